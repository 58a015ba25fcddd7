"""`gatehouse migrate sqlite-to-postgres`: an embedded deployment's state moved into an empty
PostgreSQL database, so it can go on as replicas.

Rows are copied as stored, never rebuilt: audit records keep their seq, text and hash, and
checkpoints their signatures, so the chain verifies in PostgreSQL against the same public key.
Rows go in in the order SQLite inserted them, which PostgreSQL's `seq` columns then keep.
Everything is one transaction holding every table exclusively: a gateway started on the
target meanwhile waits, and a copy that fails leaves the target as empty as it was.

Refused: a source trail that does not verify (moving it would bury the break under new records),
a target with Gatehouse rows in it, and a state database that another process has open (a
gateway still running would go on writing to SQLite after the copy).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gateway.audit import GENESIS, AuditError, SQLiteTrail, VerifyReport, verify
from gateway.postgres.audit import PostgresTrail
from gateway.postgres.backends import SQLITE, Backend
from gateway.postgres.database import Connection, open_migrated, safe_url
from gateway.store import StoreError

# in the order they are filled (votes and openings name their item)
STATE_TABLES = ("tokens", "halts", "policy_snapshots", "pending_items", "pending_votes",
                "pending_opens", "grants", "quarantine", "incidents")
AUDIT_TABLES = ("audit", "checkpoint")
SHM_DEAD_MAN_BYTE = 128  # SQLite's WAL index: every open connection holds a shared lock here


@dataclass(frozen=True, slots=True)
class Moved:
    rows: dict[str, int]  # by table
    trail: VerifyReport  # the trail as verified in PostgreSQL afterwards


def sqlite_to_postgres(state_dir: Path, url: str) -> Moved:
    """Copy the SQLite state of `state_dir` into the empty database at `url` (raises
    StoreError, with nothing written to the target)."""
    backend = Backend(SQLITE, state_dir)
    for path in (backend.state_db, backend.audit_db):
        if not path.is_file():
            raise StoreError(f"there is no `{path.name}` in `{state_dir}`: nothing to move "
                             "(give the state directory of the gateway with --state)")
        if in_use(path):
            raise StoreError(f"`{path}` is open in another process: stop the gateway running "
                             "on this state directory (and any gatehouse command using it), "
                             "then migrate")
    for opened in (backend.state(), backend.pending(), backend.grants(), backend.quarantine(),
                   backend.incidents()):
        opened.close()  # as a gateway starting on it would: the schema at this version
    source = verify(SQLiteTrail(backend.audit_db))
    if not source.ok:
        raise StoreError(f"the audit trail in `{backend.audit_db}` does not verify, so it was "
                         f"not moved: {source.problem}")
    with contextlib.closing(open_migrated(url, "migration target")) as target:
        try:
            rows = _copy(backend, target)
        except psycopg.Error as e:
            raise StoreError(f"nothing was moved to `{safe_url(url)}`: {e}") from e
    trail = PostgresTrail(url, state_dir)
    try:
        report = verify(trail)
    finally:
        trail.close()
    if not report.ok:  # the copy is byte for byte: this is a fault of the migration itself
        raise AuditError(f"the audit trail moved to `{safe_url(url)}` does not verify: "
                         f"{report.problem}")
    return Moved(rows, report)


def in_use(path: Path) -> bool:
    """Whether another process has the SQLite database at `path` open (in WAL mode, as
    Gatehouse opens it): then it holds a shared lock on the WAL index's dead-man byte. Asked
    before this process opens the database, whose own locks a test here would drop."""
    try:
        fd = os.open(path.with_name(path.name + "-shm"), os.O_RDWR)
    except FileNotFoundError:
        return False  # no WAL index: nobody has it open
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SHM_DEAD_MAN_BYTE)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the test lock
    return False


def _copy(backend: Backend, target: Connection) -> dict[str, int]:
    """Every table, in one transaction on `target`, from one snapshot of each SQLite file."""
    with target.transaction():
        tables = sql.SQL(", ").join(map(sql.Identifier, (*STATE_TABLES, *AUDIT_TABLES)))
        target.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(tables))
        if filled := [t for t in (*STATE_TABLES, *AUDIT_TABLES) if _has_rows(target, t)]:
            raise StoreError(f"the target database already holds Gatehouse state (in "
                             f"{', '.join(filled)}): migrate only into an empty one, made with "
                             "`createdb`")
        if target.execute("SELECT seq FROM audit_head").fetchone() != (0,):
            raise StoreError("the target database's audit head has moved: migrate only into "
                             "an empty database")
        rows = {}
        for path, names in ((backend.state_db, STATE_TABLES), (backend.audit_db, AUDIT_TABLES)):
            with _snapshot(path) as source:
                rows.update((name, _copy_table(source, target, name)) for name in names)
        head = target.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        target.execute("UPDATE audit_head SET seq = %s, hash = %s", head or (0, GENESIS))
    return rows


@contextlib.contextmanager
def _snapshot(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction: one consistent view of the file."""
    with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True,
                                            isolation_level=None)) as db:
        db.execute("BEGIN")
        yield db
        db.execute("COMMIT")


def _has_rows(target: Connection, table: str) -> bool:
    return target.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(
        sql.Identifier(table))).fetchone() == (True,)


def _copy_table(source: sqlite3.Connection, target: Connection, table: str) -> int:
    """Every row of `table`, in insertion (rowid) order, through COPY; how many. SQLite keeps
    whatever type it was given (an incident's JSON arrives as a blob): bytes bound for a text
    column are decoded, or the column would hold their hex."""
    columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
    types = dict(target.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = current_schema()", (table,)).fetchall())
    if missing := [c for c in columns if c not in types]:  # a schema step forgotten on one side
        raise StoreError(f"table `{table}` has columns PostgreSQL lacks: {', '.join(missing)}")
    text = [types[c] == "text" for c in columns]
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    count = 0
    with target.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), names)) as copy:
        for row in source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid"):
            copy.write_row([v.decode() if is_text and isinstance(v, bytes) else v
                            for v, is_text in zip(row, text, strict=True)])
            count += 1
    return count
