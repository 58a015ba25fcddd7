"""The audit trail on PostgreSQL: one chain for every replica (`gateway.audit.AuditLog`).

Each writer's batch is one transaction that first takes a transaction-level advisory lock, then
reads the tail, inserts its records chained onto it, moves the head anchor (a one-row table) and
commits, so the sequence stays gapless and every record links to the one before it whichever
replica wrote it. Everything else (group commit, hashing, checkpoints, `verify`, `export`) is
`gateway.audit`'s, shared with SQLite.

The signing key stays in the state directory. Replicas appending to one trail need the same key
(copy `audit-signing.key` to each, as the CA), or their checkpoints will not verify against one
public key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from gateway.audit import AuditEntry, AuditError, AuditLog, Trail
from gateway.checkpoints import Conn
from gateway.postgres.database import Connection, Database
from gateway.store import StoreError

# pg_advisory_xact_lock key of appends to the trail: "audit" in ASCII
LOCK_KEY = 0x6175646974
STREAM_ROWS = 5000  # rows fetched at a time when verify or export reads the whole trail


class Qmark:
    """A psycopg connection spoken to as the shared audit SQL is written: `?` placeholders
    (none of that SQL has a `?` or `%` of its own)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[object] = (), /) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), args or None)

    def stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """Rows fetched in batches through a server-side cursor (inside a transaction)."""
        with self._conn.cursor(name="gatehouse_stream") as cursor:
            cursor.itersize = STREAM_ROWS
            yield from cursor.execute(sql)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]], /) -> Any:
        return self._conn.cursor().executemany(sql.replace("?", "%s"), rows)

    def close(self) -> None:
        self._conn.close()


class PostgresTrail(Trail):
    errors = (psycopg.Error, StoreError)
    request_id_sql = "record::json ->> 'request_id'"  # json, not jsonb: it takes any record

    def __init__(self, url: str, directory: Path, *, busy_timeout: float = 5.0) -> None:
        try:
            self._db = Database(url, "audit trail")
        except StoreError as e:
            raise AuditError(str(e)) from e
        self.name = self.source = self._db.url
        self.directory = directory
        # one round trip: the lock waits at most `busy_timeout` for another writer, as in SQLite
        waits = max(1, round(busy_timeout * 1000))
        self._begin_write = (f"BEGIN; SET LOCAL lock_timeout = {waits}; "
                             f"SELECT pg_advisory_xact_lock({LOCK_KEY})")

    def connect(self) -> Conn:
        return Qmark(self._db.connect())

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[Conn]:
        with self._db.connection() as conn:
            yield Qmark(conn)

    def begin_write(self, conn: Conn) -> None:
        conn.execute(self._begin_write)

    def begin_read(self, conn: Conn) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def stream(self, conn: Conn, sql: str) -> Iterable[tuple[Any, ...]]:
        assert isinstance(conn, Qmark)  # every connection of this trail is one
        return conn.stream(sql)

    def commit(self, conn: Conn, head: AuditEntry | None) -> None:
        if head is not None:
            conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                         (head.seq, head.hash))
        conn.execute("COMMIT")

    def anchor(self, conn: Conn) -> tuple[int, str] | str:
        row = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
        if row is None:
            return "the head anchor (table `audit_head`) is empty: records cut off the tail " \
                   "would go unnoticed"
        return int(row[0]), str(row[1])

    def close(self) -> None:
        self._db.close()


class PostgresAuditLog(AuditLog):
    """`AuditLog` with its trail in PostgreSQL at `url`; the signing key in `state_dir`, made
if new (as the SQLite stores make it)."""

    def __init__(self, url: str, state_dir: Path, *, busy_timeout: float = 5.0,
                 checkpoint_every: int = 1000, checkpoint_interval: float = 60.0) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._start(lambda: PostgresTrail(url, state_dir, busy_timeout=busy_timeout),
                    checkpoint_every, checkpoint_interval)
