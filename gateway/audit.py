"""The tamper-evident audit trail: a hash-chained, append-only log, in its own SQLite file or in
PostgreSQL.

Every decided call is recorded durably *before* it is forwarded (design, step 9): the proxy awaits
`AuditLog.append`, and a call whose record cannot be written is refused. To keep that wait short
under load, one writer thread commits everything queued since its last commit in ONE transaction
(group commit): a hundred callers waiting together cost one fsync, not a hundred.

The chain: record n carries `prev`, the hash of record n-1 (64 zeros for record 1), and
`hash = sha256(prev + canonical JSON of the record without its hash)`. Several processes (the
gateway, CLI commands, other replicas) may append to one trail: each reads the tail inside a
transaction holding the trail's write lock, so there is only ever one chain.

Where the trail is kept is a `Trail`: its connections, its write lock and its head anchor; the
SQL, the chain, the checkpoints, `verify` and `export` are the same for every backend. The head
anchor names the last committed record (SQLite: `audit.head.json` beside `audit.db`, rewritten
after each commit, so after a crash it may lag but never lead; PostgreSQL: a row moved in the
writing transaction), and `verify` uses it to notice records cut off the tail, which the chain
alone cannot show. Whoever can rewrite both the
database and the anchor could still rewrite history that way; signed checkpoints
(`gateway.checkpoints`) close that gap. The writer signs one in the same transaction as the
record it names, every `checkpoint_every` records, and signs the head when `checkpoint_interval`
seconds have passed with records not yet under a checkpoint, and on close. `verify` checks them all
against a public key; `export` writes the trail as one signed bundle and `verify_bundle` checks
such a bundle without the state directory.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway import checkpoints
from gateway.checkpoints import (
    PUBLIC_KEY_FILE,
    BundleReader,
    Checkpoint,
    Conn,
    SigningKeyError,
    load_public_key,
    parse_public_key,
    signing_key,
)

log = logging.getLogger("gatehouse.audit")

GENESIS = "0" * 64
_RESERVED = frozenset({"seq", "ts", "event", "prev", "hash"})  # the chain's own keys
_INDEXED = ("agent", "action", "decision")  # caller fields copied into indexed columns
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq      INTEGER PRIMARY KEY,
    ts       TEXT NOT NULL,
    event    TEXT NOT NULL,
    agent    TEXT,
    action   TEXT,
    decision TEXT,
    prev     TEXT NOT NULL,
    hash     TEXT NOT NULL,
    record   TEXT NOT NULL  -- the canonical JSON that was hashed
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE INDEX IF NOT EXISTS audit_event ON audit (event, seq);
CREATE INDEX IF NOT EXISTS audit_agent ON audit (agent, seq);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, seq);
CREATE INDEX IF NOT EXISTS audit_decision ON audit (decision, seq);
"""
_TAIL = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
_INSERT = (
    "INSERT INTO audit (seq, ts, event, agent, action, decision, prev, hash, record)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class AuditError(Exception):
    """The record was not written, so the call it describes must not go ahead."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    records: int  # records checked and found intact (all of them when ok)
    first_bad_seq: int | None  # None when the problem is not a record's (anchor, key, checkpoint)
    problem: str  # one sentence naming the first bad record; "" when ok
    checkpoints: int = 0  # signed checkpoints checked, when ok
    latest_checkpoint: int | None = None  # the record the newest one names
    key_id: str = ""  # of the public key they were checked with


@dataclass(frozen=True, slots=True)
class ExportSummary:
    records: int
    checkpoints: int
    head_seq: int
    key_id: str
    left_out: int  # checkpoint rows too malformed to export (`verify` names them)


@dataclass(frozen=True, slots=True)
class _Pending:
    event: str
    fields: dict[str, object]  # already a plain-JSON copy: the caller may go on mutating its own
    waiter: asyncio.Future[AuditEntry] | concurrent.futures.Future[AuditEntry]
    loop: asyncio.AbstractEventLoop | None  # None: a thread blocks on a concurrent future


_READ = "SELECT seq, ts, event, agent, action, decision, prev, hash, record FROM audit ORDER BY seq"


def head_path(path: Path) -> Path:
    """`audit.db` -> `audit.head.json`, beside it."""
    return path.with_name(path.stem + ".head.json")


def timestamp(moment: datetime) -> str:
    """UTC, ISO 8601 with microseconds and `Z`: sorts as text, which the `ts` filters rely on."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class Trail(abc.ABC):
    """Where one chain is kept: what differs between backends (connections, the write lock, the
    head anchor). The SQL is shared, written with `?` placeholders."""

    name: str  # in messages: the file, or the URL without its password
    source: str  # in an export's header
    directory: Path  # the state directory, which holds the signing key and its public key
    errors: tuple[type[Exception], ...]  # what the backend raises when it fails
    request_id_sql: str  # a record's `request_id`, in this database's SQL

    def absent(self) -> str:
        """Why there is no trail here to read; "" when there is one."""
        return ""

    @abc.abstractmethod
    def connect(self) -> Conn:
        """A new connection in autocommit mode (every transaction is explicit): the writer's."""

    @contextlib.contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[Conn]:
        """A connection for one short task."""
        with contextlib.closing(self.connect()) as conn:
            yield conn

    @abc.abstractmethod
    def begin_write(self, conn: Conn) -> None:
        """Begin a transaction holding the trail's write lock, which every process takes."""

    @abc.abstractmethod
    def begin_read(self, conn: Conn) -> None:
        """Begin one consistent snapshot: the checkpoints and the records they name."""

    @abc.abstractmethod
    def commit(self, conn: Conn, head: AuditEntry | None) -> None:
        """Commit the write transaction; the anchor follows `head`, its new last record."""

    @abc.abstractmethod
    def anchor(self, conn: Conn) -> tuple[int, str] | str:
        """The committed head (seq, hash) the anchor names, or what is wrong with it."""

    def checkpointed(self, conn: Conn) -> bool:
        """Whether the trail has a checkpoint table (one from before checkpoints has none)."""
        return True

    def stream(self, conn: Conn, sql: str) -> Iterable[tuple[Any, ...]]:
        """The rows of a query over the whole trail, without holding them all in memory."""
        return conn.execute(sql)  # sqlite3 steps through the rows as they are read

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of what the trail holds open."""


class SQLiteTrail(Trail):
    """The trail in its own SQLite file, its head anchor in a file beside it."""

    errors = (sqlite3.Error,)
    request_id_sql = "json_extract(record, '$.request_id')"

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path, self.name, self.directory = path, str(path), path.parent
        self.source = str(path.resolve())
        self._busy_timeout = busy_timeout

    @classmethod
    def created(cls, path: Path, *, busy_timeout: float = 5.0) -> SQLiteTrail:
        """The trail at `path`, made if new, with its (genesis) anchor at once."""
        trail = cls(path, busy_timeout=busy_timeout)
        try:
            with contextlib.closing(trail.connect()) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA + checkpoints.SCHEMA)
                _write_head(head_path(path), *(conn.execute(_TAIL).fetchone() or (0, GENESIS)))
        except (sqlite3.Error, OSError) as e:
            raise AuditError(f"cannot open the audit log `{path}`: {e}") from e
        return trail

    def absent(self) -> str:
        return "" if self.path.is_file() else f"there is no audit log at `{self.path}`"

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")  # in WAL mode: every commit is fsynced
        return conn

    @contextlib.contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[Conn]:
        if not read_only:
            with super().connection() as conn:
                yield conn
            return
        with contextlib.closing(sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro",
                                                uri=True, isolation_level=None)) as conn:
            yield conn

    def begin_write(self, conn: Conn) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def begin_read(self, conn: Conn) -> None:
        conn.execute("BEGIN")

    def commit(self, conn: Conn, head: AuditEntry | None) -> None:
        conn.execute("COMMIT")
        if head is not None:
            try:
                _write_head(head_path(self.path), head.seq, head.hash)
            except OSError as e:  # the anchor lags behind; the records themselves are safe
                log.warning("audit head anchor not updated: %s", e)

    def anchor(self, conn: Conn) -> tuple[int, str] | str:
        """Read before the records: a writer may add more meanwhile, but the file never leads."""
        anchor = head_path(self.path)
        try:
            head = orjson.loads(anchor.read_bytes())
            return int(head["seq"]), str(head["hash"])
        except FileNotFoundError:
            return f"the head anchor `{anchor.name}` is missing: records cut off the tail " \
                   "would go unnoticed"
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"the head anchor `{anchor.name}` is unreadable: {e}"

    def checkpointed(self, conn: Conn) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                            "AND name = 'checkpoint'").fetchone() is not None

    def close(self) -> None:
        """Nothing to let go of: each connection is closed by whoever opened it."""


class AuditLog:
    """Appends records to one audit trail; safe to share with other processes. This one keeps it
    in an SQLite file; `gateway.postgres.audit.PostgresAuditLog` in PostgreSQL."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, checkpoint_every: int = 1000,
                 checkpoint_interval: float = 60.0) -> None:
        self._start(lambda: SQLiteTrail.created(path, busy_timeout=busy_timeout),
                    checkpoint_every, checkpoint_interval)

    def _start(self, open_trail: Callable[[], Trail], checkpoint_every: int,
               checkpoint_interval: float) -> None:
        """Open the trail (raising AuditError) and the signing key; the writer starts lazily."""
        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise ValueError("checkpoints need a positive interval and record count")
        self.commits = 0  # transactions of records committed by this log's writer (group commit)
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._due = 0.0  # (monotonic) when the writer next signs the head; set when it starts
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders `closed` against queueing: nothing queued is lost
        self._closed = False
        self._writer: threading.Thread | None = None
        self._conn: Conn | None = None  # the writer thread's alone
        # told of each record `append` made durable, on the event loop (e.g. the triggers)
        self.on_append: list[Callable[[str, dict[str, object]], None]] = []
        self.trail = open_trail()
        try:
            self._key = signing_key(self.trail.directory)  # no signing key, no records
        except SigningKeyError as e:
            self.trail.close()
            raise AuditError(f"cannot open the audit log `{self.trail.name}`: {e}") from e

    async def append(self, event: str, fields: dict[str, object]) -> AuditEntry:
        """Record one event; returns once it is committed. Raises AuditError if it was not.

        A caller cancelled while waiting does not withdraw its record: it may still be written.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[AuditEntry] = loop.create_future()
        self._submit(_Pending(event, _plain(event, fields), waiter, loop))
        entry = await waiter
        for listener in self.on_append:
            try:
                listener(event, fields)
            except Exception:  # the record is written; a listener's fault is its own
                log.exception("an audit listener failed on a `%s` record", event)
        return entry

    def append_sync(self, event: str, fields: dict[str, object]) -> AuditEntry:
        """`append` for code without an event loop (CLI commands, start-up); blocks."""
        waiter: concurrent.futures.Future[AuditEntry] = concurrent.futures.Future()
        self._submit(_Pending(event, _plain(event, fields), waiter, None))
        return waiter.result()

    def query(
        self,
        *,
        agent: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        event: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[dict[str, object]]:
        """Full records (with `hash`), oldest first; `since` is inclusive, `until` exclusive."""
        where, args = ["seq > ?"], [after_seq]
        for column, value in (("agent", agent), ("action", action), ("decision", decision),
                              ("event", event)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if request_id is not None:  # not indexed: a scan, for the rare look-up of one call
            where.append(f"{self.trail.request_id_sql} = ?")
            args.append(request_id)
        if since is not None:
            where.append("ts >= ?")
            args.append(timestamp(since))
        if until is not None:
            where.append("ts < ?")
            args.append(timestamp(until))
        sql = f"SELECT record, hash FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        with self.trail.connection() as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return [{**orjson.loads(record), "hash": digest} for record, digest in rows]

    def sign_head(self) -> Checkpoint | None:
        """Sign the committed head now unless a checkpoint names it already; the newest one."""
        try:
            with self.trail.connection() as conn:
                _sign_head(self.trail, conn, self._key)
                [newest] = checkpoints.stored(conn, newest=True) or [None]
        except self.trail.errors as e:
            raise AuditError(f"cannot sign the head of `{self.trail.name}`: {e}") from e
        if isinstance(newest, str):
            raise AuditError(newest)
        return newest

    def close(self) -> None:
        """Write what is queued, sign the head, then stop; later appends raise AuditError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            writer.join()
        self.trail.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _submit(self, pending: _Pending) -> None:
        with self._lock:
            if self._closed:
                raise AuditError("the audit log is closed")
            if self._writer is None:
                self._due = time.monotonic() + self._interval
                self._writer = threading.Thread(target=self._run, name="audit-writer",
                                                daemon=True)
                self._writer.start()
            self._queue.put(pending)

    def _run(self) -> None:
        """The writer thread: each turn commits everything queued since the last commit; when
        the checkpoint interval runs out while idle, it signs the head."""
        while True:
            try:
                batch = [self._queue.get(timeout=max(0.0, self._due - time.monotonic()))]
            except queue.Empty:
                self._checkpoint_head()
                continue
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            pending = [p for p in batch if p is not None]
            if pending:
                self._write(pending)
            if batch[-1] is None:  # close() queues this last, under the lock
                break
        self._checkpoint_head()
        self._disconnect()

    def _checkpoint_head(self) -> None:
        self._due = time.monotonic() + self._interval
        try:
            if self._conn is None:
                self._conn = self.trail.connect()
            if signed := _sign_head(self.trail, self._conn, self._key):
                log.info("audit checkpoint %s", signed.to_json().decode())
        except Exception as e:  # the records stand, the writer goes on; the next interval tries
            self._disconnect()
            log.warning("audit checkpoint not written: %s", e)

    def _disconnect(self) -> None:
        """Close the writer's connection (rolling back whatever was left open); the next turn
        connects anew."""
        with contextlib.suppress(*self.trail.errors):
            if self._conn is not None:
                self._conn.close()
        self._conn = None

    def _write(self, pending: list[_Pending]) -> None:
        """Commit one batch and wake its callers, whatever happens: they are all waiting."""
        outcomes: list[AuditEntry | AuditError]
        signed: list[Checkpoint] = []
        due = time.monotonic() >= self._due
        try:
            if self._conn is None:
                self._conn = self.trail.connect()
            entries, signed = _insert(self.trail, self._conn, pending, self._key, self._every,
                                      due)
            outcomes = list(entries)
        except Exception as e:
            self._disconnect()  # reconnect for the next batch
            log.error("audit write failed: %s", e)
            outcomes = [AuditError(f"the audit record could not be written: {e}")
                        for _ in pending]  # one each: an exception collects its raiser's trace
        else:
            self.commits += 1
        _settle(pending, outcomes)
        if signed:
            self._due = time.monotonic() + self._interval
            for checkpoint in signed:
                log.info("audit checkpoint %s", checkpoint.to_json().decode())


def _plain(event: str, fields: dict[str, object]) -> dict[str, object]:
    """A plain-JSON copy of the caller's fields, taken now: the writer thread never sees theirs."""
    if reserved := _RESERVED & fields.keys():
        raise AuditError(f"`{event}` record: field `{min(reserved)}` belongs to the chain")
    try:
        return orjson.loads(orjson.dumps(fields))
    except orjson.JSONEncodeError as e:
        raise AuditError(f"`{event}` record: fields are not JSON: {e}") from e


def _indexed(fields: dict[str, object], key: str) -> str | None:
    value = fields.get(key)
    return value if isinstance(value, str) else None


def _insert(trail: Trail, conn: Conn, pending: list[_Pending], key: Ed25519PrivateKey,
            every: int, sign_head: bool) -> tuple[list[AuditEntry], list[Checkpoint]]:
    """One transaction for the whole batch, chained onto the tail as it is *inside* it, with a
    checkpoint for every record numbered a multiple of `every`, and for the last if `sign_head`."""
    trail.begin_write(conn)
    seq, prev = conn.execute(_TAIL).fetchone() or (0, GENESIS)
    rows, entries, signed = [], [], []
    for p in pending:
        seq += 1
        ts = timestamp(datetime.now(UTC))
        record = {**p.fields, "seq": seq, "ts": ts, "event": p.event, "prev": prev}
        text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(prev.encode() + text).hexdigest()
        rows.append((seq, ts, p.event, *(_indexed(p.fields, k) for k in _INDEXED), prev, digest,
                     text.decode()))
        entries.append(AuditEntry(seq, ts, digest))
        prev = digest
        if seq % every == 0:
            signed.append(checkpoints.sign(key, seq, digest, ts))
    if sign_head and (not signed or signed[-1].seq != seq):
        signed.append(checkpoints.sign(key, seq, prev, entries[-1].ts))
    conn.executemany(_INSERT, rows)
    if signed:
        checkpoints.store(conn, signed)
    trail.commit(conn, entries[-1])
    return entries, signed


def _sign_head(trail: Trail, conn: Conn, key: Ed25519PrivateKey) -> Checkpoint | None:
    """Sign the committed head if no checkpoint names it or a later record yet; the write lock is
    taken only then."""
    tail = conn.execute(_TAIL).fetchone()
    if tail is None or tail[0] <= checkpoints.latest(conn):
        return None
    trail.begin_write(conn)
    try:
        seq, digest = conn.execute(_TAIL).fetchone()
        if seq <= checkpoints.latest(conn):  # another process signed it meanwhile
            conn.execute("ROLLBACK")
            return None
        signed = checkpoints.sign(key, seq, digest, timestamp(datetime.now(UTC)))
        checkpoints.store(conn, [signed])
        trail.commit(conn, None)
    except BaseException:
        with contextlib.suppress(*trail.errors):
            conn.execute("ROLLBACK")
        raise
    return signed


HEAD_SIZE = 192  # bytes; the anchor is padded to this so it is always rewritten in place


def _write_head(path: Path, seq: int, digest: str) -> None:
    """Anchor a committed tail with one in-place write (no rename, no lock: a rename costs about
    a millisecond on some filesystems, and this runs after every commit). It may lag, never
    lead: it is written only after its record committed, and an older anchor written late by a
    slower process only lags."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, orjson.dumps({"seq": seq, "hash": digest}).ljust(HEAD_SIZE), 0)
    finally:
        os.close(fd)


def _settle(pending: list[_Pending], outcomes: Iterable[AuditEntry | AuditError]) -> None:
    """Wake every caller: one `call_soon_threadsafe` per event loop, not one per record."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, AuditEntry | AuditError]]] = {}
    for p, outcome in zip(pending, outcomes, strict=True):
        if p.loop is None:
            _resolve([(p, outcome)])
        else:
            by_loop.setdefault(p.loop, []).append((p, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[_Pending, AuditEntry | AuditError]]) -> None:
    for p, outcome in settled:
        if p.waiter.done():  # the caller was cancelled
            continue
        if isinstance(outcome, AuditError):
            p.waiter.set_exception(outcome)
        else:
            p.waiter.set_result(outcome)


def _trail(source: Path | Trail) -> Trail:
    """An SQLite file is named by its path; any other trail is handed over opened."""
    return source if isinstance(source, Trail) else SQLiteTrail(source)


def _stored(trail: Trail, conn: Conn) -> list[Checkpoint | str]:
    return checkpoints.stored(conn) if trail.checkpointed(conn) else []


def verify(source: Path | Trail, *, public_key: Path | None = None,
           kept: Iterable[Checkpoint | str] = ()) -> VerifyReport:
    """Walk the whole chain, the head anchor and every signed checkpoint; name the first record
    that is not as written (or the checkpoint, anchor or key that is wrong).

    Checkpoints are checked against `public_key` (default: `audit-signing.pub` in the state
    directory); `kept` adds checkpoints kept elsewhere, which catch a trail cut short together
    with its checkpoint table.
    """
    trail = _trail(source)
    if problem := trail.absent():
        return VerifyReport(False, 0, None, problem)
    try:
        with trail.connection(read_only=True) as conn:
            # the anchor before the records: a writer may add more meanwhile, never fewer
            head = trail.anchor(conn)
            if isinstance(head, str):
                return VerifyReport(False, 0, None, head)
            head_seq, head_hash = head
            trail.begin_read(conn)
            found = [*_stored(trail, conn), *kept]
            walked = _walk(trail.stream(conn, _READ), _named(found, head_seq))
            conn.execute("COMMIT")
    except trail.errors as e:
        return VerifyReport(False, 0, None, f"cannot read the audit log `{trail.name}`: {e}")
    if isinstance(walked, VerifyReport):
        return walked
    count, hashes = walked
    if head_seq > count:
        cut = f"record {head_seq} was" if head_seq == count + 1 else \
            f"records {count + 1} to {head_seq} were"
        return VerifyReport(False, count, count + 1, f"{cut} removed from the tail: the head "
                                                     f"anchor names record {head_seq} but the "
                                                     f"log ends at record {count}")
    if hashes.get(head_seq, GENESIS) != head_hash:
        return VerifyReport(False, head_seq - 1, head_seq, f"record {head_seq} was altered: its "
                                                           "hash does not match the head anchor")
    if not found and public_key is None:  # a trail from before checkpoints, or a new one
        return VerifyReport(True, count, None, "")
    key_file = public_key or trail.directory / PUBLIC_KEY_FILE
    try:
        public = load_public_key(key_file)
    except SigningKeyError as e:
        many = f"{len(found)} signed checkpoints" if len(found) != 1 else "1 signed checkpoint"
        return VerifyReport(False, count, None, f"{e}, so {many} cannot be checked")
    return _checked(found, public, f"`{key_file}`", count, hashes)


def _named(found: Iterable[Checkpoint | str], head_seq: int) -> set[int]:
    """The records whose hashes the walk must keep: the ones checkpoints and the head name."""
    return {c.seq for c in found if isinstance(c, Checkpoint)} | {head_seq}


def _checked(found: list[Checkpoint | str], public: Ed25519PublicKey, key_name: str,
             count: int, hashes: dict[int, str]) -> VerifyReport:
    if problem := checkpoints.check(found, public, key_name, count, hashes):
        return VerifyReport(False, problem.intact, problem.first_bad_seq, problem.message)
    seqs = {c.seq for c in found if isinstance(c, Checkpoint)}
    return VerifyReport(True, count, None, "", len(seqs), max(seqs, default=None),
                        checkpoints.key_id(public))


def _walk(rows: Iterable[tuple[int, str, str, str | None, str | None, str | None, str, str, str]],
          named: set[int]) -> VerifyReport | tuple[int, dict[int, str]]:
    """Check seq, hash, columns and links record by record; if intact, the count and the hashes
    of the `named` records.

    A rewritten record whose own hash was recomputed still breaks the link from the next one, and
    that is how it is named.
    """
    expected, prev_hash, hashes = 1, GENESIS, {}

    def bad(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(False, seq - 1, seq, problem)

    for seq, ts, event, agent, action, decision, prev, digest, text in rows:
        if seq != expected:
            if seq < expected:
                return VerifyReport(False, expected - 1, seq, f"record {seq} should not exist: "
                                                              "the sequence starts at 1")
            return bad(expected, f"record {expected} is missing: the sequence jumps from "
                                 f"{expected - 1} to {seq}")
        if hashlib.sha256(prev.encode() + text.encode()).hexdigest() != digest:
            return bad(seq, f"record {seq} was altered: its hash does not match its content")
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            return bad(seq, f"record {seq} was altered: its content is not JSON")
        if record.get("seq") != seq:
            return bad(seq, f"record {seq} is out of order: position {seq} holds record "
                            f"{record.get('seq')}")
        columns = {"ts": ts, "event": event, "agent": agent, "action": action,
                   "decision": decision, "prev": prev}
        for name, value in columns.items():
            if _indexed(record, name) != value:
                return bad(seq, f"record {seq} was altered: its `{name}` column does not match "
                                "its content")
        if prev != prev_hash:
            if seq == 1:
                return bad(1, "record 1 was altered: it does not start from the genesis hash")
            return bad(seq - 1, f"record {seq - 1} was altered or replaced: record {seq} links "
                                "to a different hash")
        if seq in named:
            hashes[seq] = digest
        expected, prev_hash = seq + 1, digest
    return expected - 1, hashes


# -- the verifiable export ----------------------------------------------------------------------


def export(source: Path | Trail, out: Path) -> ExportSummary:
    """Write the whole trail, its checkpoints and the public key to `out` as one signed bundle.

    Read in one snapshot, so the gateway may go on appending; written beside `out` and renamed
    into place, so `out` is never half a bundle. Raises AuditError.
    """
    trail = _trail(source)
    if problem := trail.absent():
        raise AuditError(problem)
    partial = out.with_name(f".{out.name}.partial")
    try:
        key = signing_key(trail.directory)
        with trail.connection(read_only=True) as conn:
            trail.begin_read(conn)
            count, = conn.execute("SELECT count(*) FROM audit").fetchone()
            head = conn.execute(_TAIL).fetchone() or (0, GENESIS)
            rows = _stored(trail, conn)
            found = [c for c in rows if isinstance(c, Checkpoint)]
            header = {"exported_at": timestamp(datetime.now(UTC)), "source": trail.source,
                      "head": {"seq": head[0], "hash": head[1]}}
            with partial.open("wb") as stream:
                records = trail.stream(conn, "SELECT record FROM audit ORDER BY seq")
                checkpoints.write_bundle(stream, key, header, found,
                                         (text for (text,) in records), count)
                stream.flush()
                os.fsync(stream.fileno())
            conn.execute("COMMIT")
        os.replace(partial, out)
    except (*trail.errors, OSError, ValueError, SigningKeyError) as e:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise AuditError(f"cannot export the audit log `{trail.name}` to `{out}`: {e}") from e
    return ExportSummary(count, len(found), head[0], checkpoints.key_id(key.public_key()),
                         len(rows) - len(found))


def verify_bundle(bundle: Path, *, public_key: Path | None = None,
                  kept: Iterable[Checkpoint | str] = ()) -> VerifyReport:
    """Verify an exported bundle on its own: chain, head, checkpoints (and those `kept`
    elsewhere) and the bundle's signature, against `public_key` (default: the key inside the
    bundle, which shows only that the bundle is whole, not who made it)."""
    try:
        with bundle.open("rb") as stream:
            reader = BundleReader(stream, f"`{bundle}`")
            if public_key is not None:
                public, key_name = load_public_key(public_key), f"`{public_key}`"
            else:
                key_name = "the key inside the bundle"
                public = parse_public_key(reader.public_key_pem, key_name)
            found = [*reader.checkpoints(), *kept]
            head_seq, head_hash = reader.head
            walked = _walk_bundle(reader.records_text(), _named(found, head_seq))
            if isinstance(walked, VerifyReport):
                return walked
            count, hashes = walked
            if count < reader.records:
                return VerifyReport(False, count, count + 1, f"the bundle ends after record "
                                                             f"{count}: its header announces "
                                                             f"{reader.records} records")
            if head_seq != count or hashes.get(head_seq, GENESIS) != head_hash:
                return VerifyReport(False, count - 1, count, f"record {count} was altered: its "
                                                             "hash does not match the bundle's "
                                                             "head")
            report = _checked(found, public, key_name, count, hashes)
            if report.ok and (problem := reader.signature_problem(public, key_name)):
                return VerifyReport(False, count, None, problem)
            return report
    except OSError as e:
        return VerifyReport(False, 0, None, f"cannot read the bundle `{bundle}`: "
                                            f"{e.strerror or e}")
    except (ValueError, SigningKeyError) as e:
        return VerifyReport(False, 0, None, str(e))


def _walk_bundle(lines: Iterable[bytes],
                 named: set[int]) -> VerifyReport | tuple[int, dict[int, str]]:
    """`_walk` for a bundle's record lines: each line is exactly the text that was hashed, so
    the hashes and links are recomputed from the records themselves."""
    expected, prev_hash, hashes = 1, GENESIS, {}

    def bad(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(False, seq - 1, seq, problem)

    for text in lines:
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            return bad(expected, f"record {expected} was altered: its line is not JSON")
        seq = record.get("seq") if isinstance(record, dict) else None
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                return bad(expected, f"record {expected} is missing or out of place: the bundle "
                                     f"goes from record {expected - 1} to record {seq}")
            return bad(expected, f"record {expected} is out of place: its line holds record "
                                 f"{seq}")
        prev = record.get("prev")
        if prev != prev_hash or not isinstance(prev, str):
            if seq == 1:
                return bad(1, "record 1 was altered: it does not start from the genesis hash")
            return bad(seq - 1, f"record {seq - 1} was altered or replaced: record {seq} links "
                                "to a different hash")
        digest = hashlib.sha256(prev.encode() + text).hexdigest()
        if seq in named:
            hashes[seq] = digest
        expected, prev_hash = seq + 1, digest
    return expected - 1, hashes
