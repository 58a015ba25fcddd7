"""The audit trail: durable before the call goes on, one gapless hash chain however many callers
and processes append, and a verifier that names the first record that was tampered with. Every
test taking `where` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from gateway.audit import GENESIS, AuditEntry, AuditError, AuditLog, VerifyReport, verify
from gateway.checkpoints import Conn
from gateway.postgres.audit import PostgresAuditLog
from tests.gateway.postgres.places import TrailPlace, trail_fixture
from tests.gateway.postgres.test_database import free_port

ROOT = Path(__file__).resolve().parents[2]
DECIDED = {"agent": "alice", "action": "email.send", "params": {"to": ["bob@example.com"]},
           "method": "POST", "url": "https://mail.example/send", "request_hash": "ab" * 32,
           "decision": "allow", "rule_ids": ["mail-out"], "reason": "rule matched",
           "snapshot_id": "r7:0123456789ab"}


where = trail_fixture()
on_postgresql = trail_fixture(("postgresql",))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def log(where: TrailPlace) -> Iterator[AuditLog]:
    with where.open() as opened:
        yield opened


def rows(where: TrailPlace) -> list[tuple[int, str, str]]:
    with where.db() as db:
        return db.execute("SELECT seq, prev, hash FROM audit ORDER BY seq").fetchall()


def intact(report: VerifyReport) -> int:
    """The records a report found intact, failing the test with its problem if it found one."""
    assert (report.ok, report.first_bad_seq, report.problem) == (True, None, "")
    return report.records


# -- append and query ---------------------------------------------------------------------------


def test_a_record_is_committed_and_chained_before_append_returns(where: TrailPlace,
                                                                 log: AuditLog) -> None:
    entry = log.append_sync("call.decided", DECIDED)

    [record] = log.query()
    assert record == {**DECIDED, "seq": 1, "ts": entry.ts, "event": "call.decided",
                      "prev": GENESIS, "hash": entry.hash}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry.ts)
    hashed = {k: v for k, v in record.items() if k != "hash"}
    canonical = orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS)
    assert entry.hash == hashlib.sha256(GENESIS.encode() + canonical).hexdigest()
    assert rows(where) == [(1, GENESIS, entry.hash)]  # visible to any other connection
    log.close()
    assert where.head() == (1, entry.hash)


def test_async_append_continues_the_chain(where: TrailPlace, log: AuditLog) -> None:
    first = log.append_sync("policy.reloaded", {"snapshot_id": "r1:aaaaaaaaaaaa"})
    second = asyncio.run(log.append("call.decided", DECIDED))
    assert second.seq == 2
    assert rows(where) == [(1, GENESIS, first.hash), (2, first.hash, second.hash)]


def test_the_callers_fields_are_stored_as_json(log: AuditLog) -> None:
    fields: dict[str, object] = {"agent": "alice", "params": {"ids": (1, 2)},
                                 "at": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)}
    log.append_sync("call.decided", fields)
    fields["agent"] = "mallory"  # later changes to the caller's dict are not the record's
    [record] = log.query()
    assert (record["agent"], record["params"], record["at"]) == (
        "alice", {"ids": [1, 2]}, "2030-01-02T03:04:05+00:00")


@pytest.mark.parametrize(("fields", "problem"), [
    ({"seq": 7}, "`call.decided` record: field `seq` belongs to the chain"),
    ({"hash": "0"}, "`call.decided` record: field `hash` belongs to the chain"),
    ({"body": object()}, "`call.decided` record: fields are not JSON: "),
    ({1: "non-string key"}, "`call.decided` record: fields are not JSON: "),
])
def test_fields_that_cannot_be_recorded_are_refused_and_nothing_is_written(
        where: TrailPlace, log: AuditLog, fields: dict[str, object], problem: str) -> None:
    with pytest.raises(AuditError, match=re.escape(problem)):
        log.append_sync("call.decided", fields)
    with pytest.raises(AuditError, match=re.escape(problem)):
        asyncio.run(log.append("call.decided", fields))
    assert rows(where) == []


RECORDS = [
    ("call.decided", {"agent": "alice", "action": "email.send", "decision": "allow"}),
    ("call.decided", {"agent": "bob", "action": "payments.refund", "decision": "deny"}),
    ("halt.set", {"actor": "carol", "scope": "agent", "target": "bob"}),
    ("call.decided", {"agent": "alice", "action": "payments.refund",
                      "decision": "require_approval"}),
    ("policy.reloaded", {"actor": "carol", "snapshot_id": "r2:bbbbbbbbbbbb"}),
]


@pytest.mark.parametrize(("filters", "seqs"), [
    ({}, [1, 2, 3, 4, 5]),
    ({"agent": "alice"}, [1, 4]),
    ({"action": "payments.refund"}, [2, 4]),
    ({"decision": "deny"}, [2]),
    ({"event": "halt.set"}, [3]),
    ({"agent": "alice", "action": "payments.refund"}, [4]),
    ({"agent": "nobody"}, []),
    ({"after_seq": 3}, [4, 5]),
    ({"limit": 2}, [1, 2]),
    ({"after_seq": 1, "limit": 2}, [2, 3]),  # paging
])
def test_query_filters(log: AuditLog, filters: dict[str, object], seqs: list[int]) -> None:
    for event, fields in RECORDS:
        log.append_sync(event, fields)
    assert [r["seq"] for r in log.query(**filters)] == seqs  # type: ignore[arg-type]


@pytest.mark.parametrize(("since", "until", "seqs"), [
    (3, None, [3, 4, 5]),  # since is inclusive
    (None, 3, [1, 2]),  # until is exclusive
    (2, 4, [2, 3]),
])
def test_query_by_time(log: AuditLog, since: int | None, until: int | None,
                       seqs: list[int]) -> None:
    entries = [log.append_sync(event, fields) for event, fields in RECORDS]

    def at(seq: int | None) -> datetime | None:
        if seq is None:
            return None
        moment = datetime.fromisoformat(entries[seq - 1].ts.replace("Z", "+00:00"))
        return moment.astimezone()  # any timezone: the filter converts to UTC

    assert [r["seq"] for r in log.query(since=at(since), until=at(until))] == seqs


def test_query_refuses_a_time_without_a_timezone(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="timezone"):
        log.query(since=datetime(2030, 1, 1))


# -- durability and one chain -------------------------------------------------------------------


def test_records_survive_reopening_and_the_next_log_continues_the_chain(
        where: TrailPlace) -> None:
    with where.open() as first:
        for event, fields in RECORDS[:3]:
            first.append_sync(event, fields)
    with where.open() as second:
        assert second.append_sync(*RECORDS[3]).seq == 4
    with where.open() as third:
        assert [r["event"] for r in third.query()] == [e for e, _ in RECORDS[:4]]
    assert intact(verify(where.trail)) == 4


def test_two_logs_open_on_one_trail_write_one_chain(where: TrailPlace) -> None:
    with where.open() as gateway, where.open() as cli:
        seqs = [(gateway if n % 2 else cli).append_sync("call.decided", {"n": n}).seq
                for n in range(10)]
    assert seqs == list(range(1, 11))
    assert intact(verify(where.trail)) == 10


def test_concurrent_appends_share_transactions_and_land_gapless(where: TrailPlace,
                                                                log: AuditLog) -> None:
    async def burst() -> list[AuditEntry]:
        return await asyncio.gather(*(log.append("call.decided", {"agent": f"a{n % 7}", "n": n})
                                      for n in range(500)))

    entries = asyncio.run(burst())
    assert sorted(e.seq for e in entries) == list(range(1, 501))
    assert log.commits < 50  # group commit: many records per transaction, not one each
    assert intact(verify(where.trail)) == 500
    assert where.head() == (500, max(entries, key=lambda e: e.seq).hash)


def test_a_waiting_append_never_blocks_the_event_loop(where: TrailPlace, log: AuditLog) -> None:
    async def scenario() -> AuditEntry:
        with where.writing():  # another process is writing: the writer waits
            task = asyncio.create_task(log.append("call.decided", DECIDED))
            for _ in range(20):  # the loop keeps turning meanwhile
                await asyncio.sleep(0.01)
                assert not task.done()
        return await task

    assert asyncio.run(scenario()).seq == 1


CHILD = """
import asyncio, sys, time
from pathlib import Path
from tests.gateway.postgres.places import TrailPlace

state, url, who, start = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3], Path(sys.argv[4])
with TrailPlace(state, url).open() as log:
    (state / who).touch()  # ready
    while not start.exists():
        time.sleep(0.001)
    if who == "cli":  # one transaction per record, as CLI commands do
        for n in range(150):
            log.append_sync("token.created", {"actor": who, "n": n})
            time.sleep(0.001)
    else:  # the gateway: bursts of concurrent appends
        async def bursts():
            for b in range(30):
                await asyncio.gather(*(log.append("call.decided", {"actor": who, "n": b * 5 + i})
                                       for i in range(5)))
                await asyncio.sleep(0.002)
        asyncio.run(bursts())
"""


def test_two_processes_appending_at_once_write_one_verifiable_chain(where: TrailPlace) -> None:
    where.open().close()
    start = where.directory / "start"
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(where.directory),
                                  where.url or "", who, str(start)], cwd=ROOT)
                for who in ("cli", "gateway")]
    while not all((where.directory / who).exists() for who in ("cli", "gateway")):
        time.sleep(0.001)
    start.touch()  # both are imported and open: they start together
    assert [child.wait(timeout=60) for child in children] == [0, 0]

    assert intact(verify(where.trail)) == 300
    with where.open() as log:
        records = log.query(limit=1000)
    for who in ("cli", "gateway"):
        assert [r["n"] for r in records if r["actor"] == who] == list(range(150))
    turns = sum(a["actor"] != b["actor"] for a, b in zip(records, records[1:], strict=False))
    assert turns > 1  # the two really did write at the same time


# -- failing closed -----------------------------------------------------------------------------


@contextmanager
def table_dropped(where: TrailPlace) -> Iterator[None]:
    with where.db() as db:
        db.execute("DROP TABLE audit")
    yield


REFUSE_INSERTS = {  # as a full disk would: the database takes no more rows
    "sqlite": "CREATE TRIGGER full BEFORE INSERT ON audit BEGIN "
              "SELECT RAISE(ABORT, 'database or disk is full'); END",
    "postgresql": "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  "RAISE EXCEPTION 'database or disk is full'; END $$; "
                  "CREATE TRIGGER disk_full BEFORE INSERT ON audit EXECUTE FUNCTION disk_full()",
}


@contextmanager
def inserts_refused(where: TrailPlace) -> Iterator[None]:
    with where.db() as db:
        db.execute(REFUSE_INSERTS["postgresql" if where.url else "sqlite"])
    yield


def locked_by_another_writer(where: TrailPlace) -> AbstractContextManager[None]:
    return where.writing()


@pytest.mark.parametrize(("failure", "messages"), [
    (table_dropped, ("no such table: audit", 'relation "audit" does not exist')),
    (inserts_refused, ("database or disk is full", "database or disk is full")),
    (locked_by_another_writer, ("database is locked", "canceling statement due to lock "
                                                      "timeout")),
])
def test_every_waiting_caller_gets_audit_error_when_the_write_fails(
        where: TrailPlace, failure: Callable[[TrailPlace], AbstractContextManager[None]],
        messages: tuple[str, str]) -> None:
    async def scenario(log: AuditLog) -> list[AuditEntry | BaseException]:
        await log.append("call.decided", DECIDED)  # the writer is up and connected
        with failure(where):
            return await asyncio.gather(*(log.append("call.decided", DECIDED)
                                          for _ in range(5)), return_exceptions=True)

    with where.open(busy_timeout=0.2) as log:
        outcomes = asyncio.run(scenario(log))
    assert [type(o) for o in outcomes] == [AuditError] * 5
    message = f"the audit record could not be written: {messages[bool(where.url)]}"
    assert all(str(o).startswith(message) for o in outcomes), outcomes


def test_the_log_recovers_without_a_gap_once_the_database_takes_writes_again(
        where: TrailPlace) -> None:
    with where.open(busy_timeout=0.2) as log:
        with where.writing(), pytest.raises(AuditError):
            log.append_sync("call.decided", DECIDED)
        assert log.append_sync("call.decided", DECIDED).seq == 1
    assert intact(verify(where.trail)) == 1


def test_a_writer_whose_connection_the_server_dropped_reconnects_without_a_gap(
        on_postgresql: TrailPlace) -> None:
    """As when PostgreSQL restarts: the batch in flight is refused (its calls do not go on),
    the next one reconnects and continues the chain."""
    with on_postgresql.open() as log:
        assert log.append_sync("call.decided", DECIDED).seq == 1
        with on_postgresql.db() as db:
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = 'gatehouse audit trail' "
                       "AND datname = current_database()")
        with pytest.raises(AuditError, match="the audit record could not be written: "):
            log.append_sync("call.decided", DECIDED)
        assert log.append_sync("call.decided", DECIDED).seq == 2
    assert intact(verify(on_postgresql.trail)) == 2


def test_a_log_that_cannot_be_opened_raises_audit_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "audit.db"
    with pytest.raises(AuditError, match=f"cannot open the audit log `{missing}`: "):
        AuditLog(missing)


def test_a_database_that_cannot_be_reached_is_named_without_its_password(
        tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(AuditError) as refused:
        PostgresAuditLog(f"postgresql://gatehouse:hunter2@127.0.0.1:{port}/gatehouse", tmp_path)
    assert str(refused.value).startswith(
        f"cannot open the audit trail: PostgreSQL at `postgresql://gatehouse@127.0.0.1:{port}/"
        "gatehouse` did not let Gatehouse in: ")
    assert "hunter2" not in str(refused.value)


def test_closing_writes_what_is_queued_and_refuses_what_comes_after(where: TrailPlace) -> None:
    log = where.open()

    async def scenario() -> list[AuditEntry]:
        tasks = [asyncio.create_task(log.append("call.decided", {"n": n})) for n in range(50)]
        await asyncio.sleep(0)  # every task has queued its record
        log.close()
        return await asyncio.gather(*tasks)

    assert sorted(e.seq for e in asyncio.run(scenario())) == list(range(1, 51))
    with pytest.raises(AuditError, match="the audit log is closed"):
        log.append_sync("call.decided", DECIDED)
    with pytest.raises(AuditError, match="the audit log is closed"):
        asyncio.run(log.append("call.decided", DECIDED))


# -- verify -------------------------------------------------------------------------------------


def rewrite(db: Conn, seq: int, **changes: object) -> None:
    """Alter one record the careful way: its own hash recomputed to match."""
    [(text,)] = db.execute("SELECT record FROM audit WHERE seq = ?", (seq,)).fetchall()
    record = {**orjson.loads(text), **changes}
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(str(record["prev"]).encode() + canonical).hexdigest()
    db.execute("UPDATE audit SET record = ?, hash = ?, prev = ?, agent = ?, decision = ?"
               " WHERE seq = ?", (canonical.decode(), digest, record["prev"], record["agent"],
                                  record["decision"], seq))


def rewrite_text(db: Conn, seq: int, text: str) -> None:
    [(prev,)] = db.execute("SELECT prev FROM audit WHERE seq = ?", (seq,)).fetchall()
    digest = hashlib.sha256((prev + text).encode()).hexdigest()
    db.execute("UPDATE audit SET record = ?, hash = ? WHERE seq = ?", (text, digest, seq))


def swap(db: Conn, a: int, b: int) -> None:
    db.execute("UPDATE audit SET seq = -1 WHERE seq = ?", (a,))
    db.execute("UPDATE audit SET seq = ? WHERE seq = ?", (a, b))
    db.execute("UPDATE audit SET seq = ? WHERE seq = -1", (b,))


def sql(statement: str) -> Callable[[Conn], None]:
    def run(db: Conn) -> None:
        db.execute(statement)
    return run


TAMPERING = [
    pytest.param(sql("UPDATE audit SET record = replace(record, '\"deny\"', '\"allow\"') "
                     "WHERE seq = 4"),
                 VerifyReport(False, 3, 4, "record 4 was altered: its hash does not match its "
                                           "content"), id="alter a field"),
    pytest.param(lambda db: rewrite(db, 4, decision="allow"),
                 VerifyReport(False, 3, 4, "record 4 was altered or replaced: record 5 links to "
                                           "a different hash"), id="alter and rehash a record"),
    pytest.param(lambda db: rewrite(db, 10, agent="nobody"),
                 VerifyReport(False, 9, 10, "record 10 was altered: its hash does not match the "
                                            "head anchor"), id="alter and rehash the last"),
    pytest.param(lambda db: rewrite(db, 1, prev="f" * 64),
                 VerifyReport(False, 0, 1, "record 1 was altered: it does not start from the "
                                           "genesis hash"), id="move the chain's start"),
    pytest.param(sql("UPDATE audit SET agent = 'bob' WHERE seq = 4"),
                 VerifyReport(False, 3, 4, "record 4 was altered: its `agent` column does not "
                                           "match its content"), id="alter a filter column"),
    pytest.param(lambda db: rewrite_text(db, 5, "not json"),
                 VerifyReport(False, 4, 5, "record 5 was altered: its content is not JSON"),
                 id="replace a record with garbage and rehash"),
    pytest.param(sql("DELETE FROM audit WHERE seq = 6"),
                 VerifyReport(False, 5, 6, "record 6 is missing: the sequence jumps from 5 to 7"),
                 id="delete a middle record"),
    pytest.param(lambda db: swap(db, 3, 4),
                 VerifyReport(False, 2, 3, "record 3 is out of order: position 3 holds record 4"),
                 id="swap two records"),
    pytest.param(sql("DELETE FROM audit WHERE seq > 8"),
                 VerifyReport(False, 8, 9, "records 9 to 10 were removed from the tail: the head "
                                           "anchor names record 10 but the log ends at record "
                                           "8"), id="truncate the tail"),
    pytest.param(sql("DELETE FROM audit WHERE seq = 10"),
                 VerifyReport(False, 9, 10, "record 10 was removed from the tail: the head anchor "
                                            "names record 10 but the log ends at record 9"),
                 id="delete the last record"),
    pytest.param(sql("INSERT INTO audit SELECT 0, ts, event, agent, action, decision, prev, "
                     "hash, record FROM audit WHERE seq = 1"),
                 VerifyReport(False, 0, 0, "record 0 should not exist: the sequence starts at 1"),
                 id="insert before the start"),
]


@pytest.mark.parametrize(("tamper", "report"), TAMPERING)
def test_verify_names_the_first_tampered_record(
        where: TrailPlace, tamper: Callable[[Conn], None], report: VerifyReport) -> None:
    with where.open(checkpoint_every=4) as log:  # signed at 4, 8 and (closing) 10
        for n in range(1, 11):
            log.append_sync("call.decided", {"agent": "alice", "decision": "deny", "n": n})
    assert intact(verify(where.trail)) == 10
    assert verify(where.trail).checkpoints == 3  # and still the chain names the first bad record
    with where.db() as db:
        tamper(db)
    assert verify(where.trail) == report


@pytest.mark.parametrize(("anchor", "problem"), [
    (None, "the head anchor `audit.head.json` is missing: records cut off the tail would go "
           "unnoticed"),
    (b"{\"seq\": 3", "the head anchor `audit.head.json` is unreadable: "),
])
def test_verify_needs_the_head_anchor(path: Path, anchor: bytes | None, problem: str) -> None:
    with AuditLog(path) as log:
        log.append_sync("call.decided", DECIDED)
    head_file = path.parent / "audit.head.json"
    if anchor is None:
        head_file.unlink()
    else:
        head_file.write_bytes(anchor)
    report = verify(path)
    assert (report.ok, report.first_bad_seq) == (False, None)
    assert report.problem.startswith(problem)


def test_verify_needs_the_head_anchor_row_in_postgresql(on_postgresql: TrailPlace) -> None:
    with on_postgresql.open() as log:
        log.append_sync("call.decided", DECIDED)
    with on_postgresql.db() as db:
        db.execute("DELETE FROM audit_head")
    assert verify(on_postgresql.trail) == VerifyReport(
        False, 0, None, "the head anchor (table `audit_head`) is empty: records cut off the tail "
                        "would go unnoticed")


def test_verify_an_empty_trail(where: TrailPlace) -> None:
    where.open().close()
    assert intact(verify(where.trail)) == 0


def test_verify_a_missing_log_and_something_else(path: Path) -> None:
    assert verify(path) == VerifyReport(False, 0, None, f"there is no audit log at `{path}`")
    AuditLog(path).close()
    path.write_bytes(b"not a database" * 100)
    assert verify(path) == VerifyReport(False, 0, None, f"cannot read the audit log `{path}`: "
                                                        "file is not a database")
