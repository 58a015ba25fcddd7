"""The tamper-evident audit trail: a hash-chained, append-only log in its own SQLite file.

Every decided call is recorded durably *before* it is forwarded (design, step 9): the proxy awaits
`AuditLog.append`, and a call whose record cannot be written is refused. To keep that wait short
under load, one writer thread commits everything queued since its last commit in ONE transaction
(group commit): a hundred callers waiting together cost one fsync, not a hundred.

The chain: record n carries `prev`, the hash of record n-1 (64 zeros for record 1), and
`hash = sha256(prev + canonical JSON of the record without its hash)`. Several processes (the
gateway, CLI commands) may append to one file: each reads the tail inside its write transaction
(`BEGIN IMMEDIATE`), so there is only ever one chain.

The head anchor (`audit.head.json` beside `audit.db`) names the last committed record. It is
rewritten after each commit, so after a crash it may lag but never lead, and `verify` uses it to
notice records cut off the tail, which the chain alone cannot show. Whoever can rewrite both the
database and the anchor can still rewrite history unnoticed: signed checkpoints (Ed25519, a later
issue) close that gap by putting the head out of that person's reach.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import orjson

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
    first_bad_seq: int | None
    problem: str  # one sentence naming the first bad record; "" when ok


@dataclass(frozen=True, slots=True)
class _Pending:
    event: str
    fields: dict[str, object]  # already a plain-JSON copy: the caller may go on mutating its own
    waiter: asyncio.Future[AuditEntry] | concurrent.futures.Future[AuditEntry]
    loop: asyncio.AbstractEventLoop | None  # None: a thread blocks on a concurrent future


def head_path(path: Path) -> Path:
    """`audit.db` -> `audit.head.json`, beside it."""
    return path.with_name(path.stem + ".head.json")


def timestamp(moment: datetime) -> str:
    """UTC, ISO 8601 with microseconds and `Z`: sorts as text, which the `ts` filters rely on."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class AuditLog:
    """Appends records to one audit database; safe to share with other processes."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.commits = 0  # transactions committed by this log's writer (group commit at work)
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders `closed` against queueing: nothing queued is lost
        self._closed = False
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # the writer thread's alone
        try:
            with contextlib.closing(self._connect()) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                # the committed tail, so a fresh log has its (genesis) anchor at once
                _write_head(head_path(path), *(conn.execute(_TAIL).fetchone() or (0, GENESIS)))
        except (sqlite3.Error, OSError) as e:
            raise AuditError(f"cannot open the audit log `{path}`: {e}") from e

    async def append(self, event: str, fields: dict[str, object]) -> AuditEntry:
        """Record one event; returns once it is committed. Raises AuditError if it was not.

        A caller cancelled while waiting does not withdraw its record: it may still be written.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[AuditEntry] = loop.create_future()
        self._submit(_Pending(event, _plain(event, fields), waiter, loop))
        return await waiter

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
        if since is not None:
            where.append("ts >= ?")
            args.append(timestamp(since))
        if until is not None:
            where.append("ts < ?")
            args.append(timestamp(until))
        sql = f"SELECT record, hash FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return [{**orjson.loads(record), "hash": digest} for record, digest in rows]

    def close(self) -> None:
        """Write what is queued, then stop; later appends raise AuditError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            writer.join()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")  # in WAL mode: every commit is fsynced
        return conn

    def _submit(self, pending: _Pending) -> None:
        with self._lock:
            if self._closed:
                raise AuditError("the audit log is closed")
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="audit-writer",
                                                daemon=True)
                self._writer.start()
            self._queue.put(pending)

    def _run(self) -> None:
        """The writer thread: each turn commits everything queued since the last commit."""
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            pending = [p for p in batch if p is not None]
            if pending:
                self._write(pending)
            if batch[-1] is None:  # close() queues this last, under the lock
                break
        if self._conn is not None:
            self._conn.close()

    def _write(self, pending: list[_Pending]) -> None:
        """Commit one batch and wake its callers, whatever happens: they are all waiting."""
        outcomes: list[AuditEntry | AuditError]
        try:
            if self._conn is None:
                self._conn = self._connect()
            outcomes = list(_insert(self._conn, pending))
        except Exception as e:
            with contextlib.suppress(sqlite3.Error):
                if self._conn is not None:
                    self._conn.close()  # rolls back whatever was left open
            self._conn = None  # reconnect for the next batch
            log.error("audit write failed: %s", e)
            outcomes = [AuditError(f"the audit record could not be written: {e}")
                        for _ in pending]  # one each: an exception collects its raiser's trace
        else:
            self.commits += 1
        _settle(pending, outcomes)  # callers go on at once; the anchor may lag a little
        written = [o for o in outcomes if isinstance(o, AuditEntry)]
        if written:
            try:
                _write_head(head_path(self.path), written[-1].seq, written[-1].hash)
            except OSError as e:  # the anchor lags behind; the records themselves are safe
                log.warning("audit head anchor not updated: %s", e)


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


def _insert(conn: sqlite3.Connection, pending: list[_Pending]) -> list[AuditEntry]:
    """One transaction for the whole batch, chained onto the tail as it is *inside* it."""
    conn.execute("BEGIN IMMEDIATE")
    seq, prev = conn.execute(_TAIL).fetchone() or (0, GENESIS)
    rows, entries = [], []
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
    conn.executemany(_INSERT, rows)
    conn.execute("COMMIT")
    return entries


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


def verify(path: Path) -> VerifyReport:
    """Walk the whole chain and the head anchor; name the first record that is not as written."""
    if not path.is_file():
        return VerifyReport(False, 0, None, f"there is no audit log at `{path}`")
    anchor = head_path(path)
    try:  # read before the records: a writer may add more meanwhile, but the anchor never leads
        head = orjson.loads(anchor.read_bytes())
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        return VerifyReport(False, 0, None, f"the head anchor `{anchor.name}` is missing: "
                                            "records cut off the tail would go unnoticed")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return VerifyReport(False, 0, None, f"the head anchor `{anchor.name}` is unreadable: {e}")
    try:
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro",
                                                uri=True)) as conn:
            walked = _walk(conn.execute("SELECT seq, ts, event, agent, action, decision, prev,"
                                        " hash, record FROM audit ORDER BY seq"), head_seq)
    except sqlite3.Error as e:
        return VerifyReport(False, 0, None, f"cannot read the audit log `{path}`: {e}")
    if isinstance(walked, VerifyReport):
        return walked
    count, hash_at_head = walked
    if head_seq > count:
        cut = f"record {head_seq} was" if head_seq == count + 1 else \
            f"records {count + 1} to {head_seq} were"
        return VerifyReport(False, count, count + 1, f"{cut} removed from the tail: the head "
                                                     f"anchor names record {head_seq} but the "
                                                     f"log ends at record {count}")
    if hash_at_head != head_hash:
        return VerifyReport(False, head_seq - 1, head_seq, f"record {head_seq} was altered: its "
                                                           "hash does not match the head anchor")
    return VerifyReport(True, count, None, "")


def _walk(rows: sqlite3.Cursor, head_seq: int) -> VerifyReport | tuple[int, str]:
    """Check seq, hash, columns and links record by record; (count, hash at head_seq) if intact.

    A rewritten record whose own hash was recomputed still breaks the link from the next one, and
    that is how it is named.
    """
    expected, prev_hash, hash_at_head = 1, GENESIS, GENESIS

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
        if seq == head_seq:
            hash_at_head = digest
        expected, prev_hash = seq + 1, digest
    return expected - 1, hash_at_head
