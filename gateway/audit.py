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
database and the anchor could still rewrite history that way; signed checkpoints
(`gateway.checkpoints`) close that gap. The writer signs one in the same transaction as the
record it names, every `checkpoint_every` records, and signs the head when `checkpoint_interval`
seconds have passed with records not yet under a checkpoint, and on close. `verify` checks them all
against a public key; `export` writes the trail as one signed bundle and `verify_bundle` checks
such a bundle without the state directory.
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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway import checkpoints
from gateway.checkpoints import (
    PUBLIC_KEY_FILE,
    BundleReader,
    Checkpoint,
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


class AuditLog:
    """Appends records to one audit database; safe to share with other processes."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, checkpoint_every: int = 1000,
                 checkpoint_interval: float = 60.0) -> None:
        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise ValueError("checkpoints need a positive interval and record count")
        self.path = path
        self.commits = 0  # transactions of records committed by this log's writer (group commit)
        self._busy_timeout = busy_timeout
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._due = 0.0  # (monotonic) when the writer next signs the head; set when it starts
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders `closed` against queueing: nothing queued is lost
        self._closed = False
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # the writer thread's alone
        # told of each record `append` made durable, on the event loop (e.g. the triggers)
        self.on_append: list[Callable[[str, dict[str, object]], None]] = []
        try:
            with contextlib.closing(self._connect()) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA + checkpoints.SCHEMA)
                # the committed tail, so a fresh log has its (genesis) anchor at once
                _write_head(head_path(path), *(conn.execute(_TAIL).fetchone() or (0, GENESIS)))
            self._key = signing_key(path.parent)  # no signing key, no records: fail closed
        except (sqlite3.Error, OSError, SigningKeyError) as e:
            raise AuditError(f"cannot open the audit log `{path}`: {e}") from e

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
            where.append("json_extract(record, '$.request_id') = ?")
            args.append(request_id)
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

    def sign_head(self) -> Checkpoint | None:
        """Sign the committed head now unless a checkpoint names it already; the newest one."""
        try:
            with contextlib.closing(self._connect()) as conn:
                _sign_head(conn, self._key)
                [newest] = checkpoints.stored(conn, newest=True) or [None]
        except sqlite3.Error as e:
            raise AuditError(f"cannot sign the head of `{self.path}`: {e}") from e
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
        if self._conn is not None:
            self._conn.close()

    def _checkpoint_head(self) -> None:
        self._due = time.monotonic() + self._interval
        try:
            if self._conn is None:
                self._conn = self._connect()
            if signed := _sign_head(self._conn, self._key):
                log.info("audit checkpoint %s", signed.to_json().decode())
        except Exception as e:  # the records stand, the writer goes on; the next interval tries
            with contextlib.suppress(sqlite3.Error):
                if self._conn is not None:
                    self._conn.close()  # rolls back whatever was left open
            self._conn = None
            log.warning("audit checkpoint not written: %s", e)

    def _write(self, pending: list[_Pending]) -> None:
        """Commit one batch and wake its callers, whatever happens: they are all waiting."""
        outcomes: list[AuditEntry | AuditError]
        signed: list[Checkpoint] = []
        due = time.monotonic() >= self._due
        try:
            if self._conn is None:
                self._conn = self._connect()
            entries, signed = _insert(self._conn, pending, self._key, self._every, due)
            outcomes = list(entries)
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
        if signed:
            self._due = time.monotonic() + self._interval
            for checkpoint in signed:
                log.info("audit checkpoint %s", checkpoint.to_json().decode())
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


def _insert(conn: sqlite3.Connection, pending: list[_Pending], key: Ed25519PrivateKey,
            every: int, sign_head: bool) -> tuple[list[AuditEntry], list[Checkpoint]]:
    """One transaction for the whole batch, chained onto the tail as it is *inside* it, with a
    checkpoint for every record numbered a multiple of `every`, and for the last if `sign_head`."""
    conn.execute("BEGIN IMMEDIATE")
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
    conn.execute("COMMIT")
    return entries, signed


def _sign_head(conn: sqlite3.Connection, key: Ed25519PrivateKey) -> Checkpoint | None:
    """Sign the committed head if no checkpoint names it or a later record yet; the write lock is
    taken only then."""
    tail = conn.execute(_TAIL).fetchone()
    if tail is None or tail[0] <= checkpoints.latest(conn):
        return None
    conn.execute("BEGIN IMMEDIATE")
    try:
        seq, digest = conn.execute(_TAIL).fetchone()
        if seq <= checkpoints.latest(conn):  # another process signed it meanwhile
            conn.execute("ROLLBACK")
            return None
        signed = checkpoints.sign(key, seq, digest, timestamp(datetime.now(UTC)))
        checkpoints.store(conn, [signed])
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
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


def verify(path: Path, *, public_key: Path | None = None,
           kept: Iterable[Checkpoint | str] = ()) -> VerifyReport:
    """Walk the whole chain, the head anchor and every signed checkpoint; name the first record
    that is not as written (or the checkpoint, anchor or key that is wrong).

    Checkpoints are checked against `public_key` (default: `audit-signing.pub` beside the log);
    `kept` adds checkpoints kept elsewhere, which catch a trail cut short together with its
    checkpoint table.
    """
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
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True,
                                                isolation_level=None)) as conn:
            conn.execute("BEGIN")  # one snapshot: the checkpoints and the records they name
            found = [*checkpoints.stored(conn), *kept]
            walked = _walk(conn.execute(_READ), _named(found, head_seq))
            conn.execute("COMMIT")
    except sqlite3.Error as e:
        return VerifyReport(False, 0, None, f"cannot read the audit log `{path}`: {e}")
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
    key_file = public_key or path.with_name(PUBLIC_KEY_FILE)
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


def export(path: Path, out: Path) -> ExportSummary:
    """Write the whole trail, its checkpoints and the public key to `out` as one signed bundle.

    Read in one snapshot, so the gateway may go on appending; written beside `out` and renamed
    into place, so `out` is never half a bundle. Raises AuditError.
    """
    if not path.is_file():
        raise AuditError(f"there is no audit log at `{path}`")
    partial = out.with_name(f".{out.name}.partial")
    try:
        key = signing_key(path.parent)
        with contextlib.closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True,
                                                isolation_level=None)) as conn:
            conn.execute("BEGIN")
            count, = conn.execute("SELECT count(*) FROM audit").fetchone()
            head = conn.execute(_TAIL).fetchone() or (0, GENESIS)
            rows = checkpoints.stored(conn)
            found = [c for c in rows if isinstance(c, Checkpoint)]
            header = {"exported_at": timestamp(datetime.now(UTC)), "source": str(path.resolve()),
                      "head": {"seq": head[0], "hash": head[1]}}
            with partial.open("wb") as stream:
                checkpoints.write_bundle(stream, key, header, found, (
                    text for (text,) in conn.execute("SELECT record FROM audit ORDER BY seq")),
                    count)
                stream.flush()
                os.fsync(stream.fileno())
            conn.execute("COMMIT")
        os.replace(partial, out)
    except (sqlite3.Error, OSError, ValueError, SigningKeyError) as e:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise AuditError(f"cannot export the audit log `{path}` to `{out}`: {e}") from e
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
