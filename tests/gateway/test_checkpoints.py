"""Signed checkpoints: written by the audit writer every N records and on a timer, checked by
`verify` against a public key, and the signed bundle that `export` writes and `verify_bundle`
checks with nothing else at hand. Tampering is done as an intruder would: raw SQL, raw files.
Every test taking `where` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import checkpoints
from gateway.audit import AuditError, AuditLog, VerifyReport, export, verify, verify_bundle
from gateway.checkpoints import Checkpoint, load_public_key, signature_ok, signing_key
from tests.gateway.postgres.places import TrailPlace, trail_fixture

ROOT = Path(__file__).resolve().parents[2]


where = trail_fixture()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


def signed(where: TrailPlace) -> list[Checkpoint]:
    with where.db() as db:
        found = checkpoints.stored(db)
    assert all(isinstance(c, Checkpoint) for c in found), found
    return found  # type: ignore[return-value]


def hashes(where: TrailPlace) -> dict[int, str]:
    with where.db() as db:
        return dict(db.execute("SELECT seq, hash FROM audit").fetchall())


def fill(where: TrailPlace, count: int, **options: float) -> None:
    with where.open(**options) as log:
        for n in range(count):
            log.append_sync("call.decided", {"agent": "alice", "decision": "allow", "n": n})


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def rewrite_anchor(where: TrailPlace) -> None:
    """What an intruder does after cutting the tail: make the anchor name the new last record."""
    with where.db() as db:
        seq, digest = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                                 ).fetchone()
    where.move_head(seq, digest)


def rechain_from(where: TrailPlace, seq: int, **changes: object) -> None:
    """Alter record `seq` and recompute every hash and link after it, anchor included: a rewrite
    the chain and the anchor cannot show."""
    with where.db() as db:
        [(prev,)] = db.execute("SELECT prev FROM audit WHERE seq = ?", (seq,)).fetchall()
        rows = db.execute("SELECT seq, record FROM audit WHERE seq >= ? ORDER BY seq",
                          (seq,)).fetchall()
        for n, text in rows:
            record = {**orjson.loads(text), "prev": prev, **(changes if n == seq else {})}
            canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
            digest = hashlib.sha256(prev.encode() + canonical).hexdigest()
            db.execute("UPDATE audit SET record = ?, prev = ?, hash = ?, agent = ?, decision = ?"
                       " WHERE seq = ?", (canonical.decode(), prev, digest, record.get("agent"),
                                          record.get("decision"), n))
            prev = digest
    rewrite_anchor(where)


# -- the key ------------------------------------------------------------------------------------


def test_the_key_pair_is_made_on_first_use_private_key_mode_0600(tmp_path: Path) -> None:
    permissive = os.umask(0)  # the key is 0600 whatever the umask
    try:
        AuditLog(tmp_path / "audit.db").close()
    finally:
        os.umask(permissive)
    key_file, public_file = tmp_path / "audit-signing.key", tmp_path / "audit-signing.pub"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert public_file.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    key = signing_key(tmp_path)
    assert checkpoints.public_pem(key.public_key()) == public_file.read_bytes()
    AuditLog(tmp_path / "audit.db").close()  # opened again: the same key, not a new one
    assert checkpoints.key_id(signing_key(tmp_path).public_key()) == \
        checkpoints.key_id(load_public_key(public_file))


def test_two_makers_at_once_agree_on_one_key(tmp_path: Path) -> None:
    made: list[str] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        made.append(checkpoints.key_id(signing_key(tmp_path).public_key()))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 1 and len(made) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit-signing.key",
                                                          "audit-signing.pub"]


def test_a_log_whose_key_cannot_be_read_does_not_open(where: TrailPlace) -> None:
    (where.directory / "audit-signing.key").write_text("not a key")
    with pytest.raises(AuditError, match="cannot load the audit signing key `.*audit-signing"
                                         r"\.key`"):
        where.open()


# -- writing checkpoints ------------------------------------------------------------------------


def test_a_checkpoint_every_n_records_in_the_transaction_that_writes_the_record(
        where: TrailPlace) -> None:
    log = where.open(checkpoint_every=10)
    for n in range(25):
        log.append_sync("call.decided", {"n": n})
    written = signed(where)  # committed with the records themselves, before append returned
    assert [c.seq for c in written] == [10, 20]
    chain = hashes(where)
    public = load_public_key(where.directory / "audit-signing.pub")
    assert all(c.hash == chain[c.seq] and signature_ok(public, c) for c in written)
    log.close()
    assert [c.seq for c in signed(where)] == [10, 20, 25]  # closing signs the head
    assert verify(where.trail).checkpoints == 3


def test_batches_of_concurrent_appends_get_a_checkpoint_at_every_multiple(
        where: TrailPlace) -> None:
    async def burst(log: AuditLog) -> None:
        await asyncio.gather(*(log.append("call.decided", {"n": n}) for n in range(500)))

    with where.open(checkpoint_every=100) as log:
        asyncio.run(burst(log))
        assert log.commits < 50  # group commit, still
        assert [c.seq for c in signed(where)] == [100, 200, 300, 400, 500]


def test_the_timer_signs_the_head_once_when_records_wait_unsigned(where: TrailPlace) -> None:
    with where.open(checkpoint_interval=0.3) as log:
        for n in range(3):
            log.append_sync("call.decided", {"n": n})
        eventually(lambda: [c.seq for c in signed(where)] == [3])
        time.sleep(1.0)  # three more intervals, no new records: nothing more to sign
        assert [c.seq for c in signed(where)] == [3]
        log.append_sync("call.decided", {"n": 3})
        eventually(lambda: [c.seq for c in signed(where)] == [3, 4])


def test_the_timer_also_signs_records_another_process_appended(where: TrailPlace) -> None:
    with where.open(checkpoint_interval=0.3) as gateway:
        gateway.append_sync("call.decided", {"n": 0})
        eventually(lambda: [c.seq for c in signed(where)] == [1])
        with where.open(checkpoint_interval=3600) as cli:
            cli.append_sync("token.created", {"n": 1})
            eventually(lambda: [c.seq for c in signed(where)] == [1, 2])  # before cli closes


def test_sign_head_signs_once_and_returns_the_newest(where: TrailPlace) -> None:
    with where.open() as log:
        assert log.sign_head() is None  # nothing to sign
        log.append_sync("call.decided", {"n": 0})
        first = log.sign_head()
        assert first is not None and first.seq == 1
        assert log.sign_head() == first
    assert [c.seq for c in signed(where)] == [1]


def test_checkpoints_are_logged_so_log_shipping_keeps_a_copy(
        where: TrailPlace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="gatehouse.audit")
    fill(where, 2, checkpoint_every=2)
    [line] = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
    assert Checkpoint.from_json(orjson.loads(line[line.index("{"):])) == signed(where)[0]


# -- verifying them -----------------------------------------------------------------------------


def sql(statement: str) -> Callable[[TrailPlace], None]:
    def run(where: TrailPlace) -> None:
        with where.db() as db:
            db.execute(statement)
    return run


def truncated_with_anchor(where: TrailPlace) -> None:
    sql("DELETE FROM audit WHERE seq > 15")(where)
    rewrite_anchor(where)


# the signature with its first byte changed
FLIPPED = ("CASE substr(signature, 1, 2) WHEN '00' THEN 'ff' ELSE '00' END"
           " || substr(signature, 3)")
SIGNATURE_TAMPERING = [
    pytest.param(sql(f"UPDATE checkpoint SET signature = {FLIPPED} WHERE seq = 20"),
                 "the checkpoint at record 20 has a bad signature: it was altered after it was "
                 "signed", id="signature bytes"),
    pytest.param(sql("UPDATE checkpoint SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = 10"),
                 "the checkpoint at record 10 has a bad signature: it was altered after it was "
                 "signed", id="signed time"),
    pytest.param(sql("UPDATE checkpoint SET hash = (SELECT hash FROM audit WHERE seq = 19)"
                     " WHERE seq = 20"),
                 "the checkpoint at record 20 has a bad signature: it was altered after it was "
                 "signed", id="signed hash"),
    pytest.param(sql("UPDATE checkpoint SET seq = 21 WHERE seq = 20"),
                 "the checkpoint at record 21 has a bad signature: it was altered after it was "
                 "signed", id="moved to another record"),
    pytest.param(sql("UPDATE checkpoint SET signature = 'zz' WHERE seq = 20"),
                 "the checkpoint at record 20 has a bad signature: it was altered after it was "
                 "signed", id="not hex"),
    pytest.param(sql("UPDATE checkpoint SET hash = 'nope' WHERE seq = 10"),
                 "the checkpoint row for record `10` is malformed: `hash` is not a SHA-256 in "
                 "hex: `nope`", id="malformed row"),
]


@pytest.mark.parametrize(("tamper", "problem"), SIGNATURE_TAMPERING)
def test_a_tampered_checkpoint_is_named(where: TrailPlace, tamper: Callable[[TrailPlace], None],
                                        problem: str) -> None:
    fill(where, 25, checkpoint_every=10)
    report = verify(where.trail)
    assert (report.ok, report.checkpoints, report.latest_checkpoint) == (True, 3, 25)
    tamper(where)
    assert verify(where.trail) == VerifyReport(False, 25, None, problem)


def test_a_key_that_did_not_sign_them_is_named(where: TrailPlace, tmp_path: Path) -> None:
    fill(where, 12, checkpoint_every=10)
    other = tmp_path / "other.pub"
    other.write_bytes(checkpoints.public_pem(Ed25519PrivateKey.generate().public_key()))
    theirs = checkpoints.key_id(load_public_key(other))
    ours = checkpoints.key_id(load_public_key(tmp_path / "audit-signing.pub"))
    assert verify(where.trail, public_key=other) == VerifyReport(
        False, 12, None, f"the checkpoint at record 10 was signed by another key ({ours}) than "
                         f"`{other}` ({theirs})")
    assert verify(where.trail, public_key=tmp_path / "audit-signing.pub").ok


def test_checkpoints_without_a_public_key_cannot_pass(where: TrailPlace, tmp_path: Path) -> None:
    fill(where, 3)
    (tmp_path / "audit-signing.pub").unlink()
    report = verify(where.trail)
    assert (report.ok, report.first_bad_seq) == (False, None)
    assert report.problem == (f"cannot read the public key `{tmp_path / 'audit-signing.pub'}`: "
                              "No such file or directory, so 1 signed checkpoint cannot be "
                              "checked")


def test_a_trail_from_before_checkpoints_still_verifies(path: Path, tmp_path: Path) -> None:
    """Only SQLite trails are that old."""
    fill(TrailPlace(tmp_path), 3)
    sql("DROP TABLE checkpoint")(TrailPlace(tmp_path))
    (tmp_path / "audit-signing.pub").unlink()
    assert verify(path) == VerifyReport(True, 3, None, "")


def test_truncation_below_a_checkpoint_is_found_even_with_the_anchor_rewritten(
        where: TrailPlace) -> None:
    fill(where, 25, checkpoint_every=10)
    truncated_with_anchor(where)
    report = verify(where.trail)
    [newest] = [c for c in signed(where) if c.seq == 25]
    assert report == VerifyReport(False, 15, 16, "records 16 to 25 were removed from the tail: "
                                                 f"the checkpoint signed at {newest.ts} names "
                                                 "record 25 but the log ends at record 15")


def test_a_rewritten_history_is_found_by_the_checkpoint_it_no_longer_matches(
        where: TrailPlace) -> None:
    fill(where, 25, checkpoint_every=10)
    rechain_from(where, 13, decision="deny")
    [twenty] = [c for c in signed(where) if c.seq == 20]
    assert verify(where.trail) == VerifyReport(
        False, 10, 20, f"record 20 is not the one that was signed: its hash differs from the "
                       f"checkpoint signed at {twenty.ts}, so the trail was rewritten after "
                       "record 10 up to it")


def test_checkpoints_kept_elsewhere_catch_a_cut_that_took_the_checkpoint_table_along(
        where: TrailPlace, tmp_path: Path) -> None:
    fill(where, 25, checkpoint_every=10)
    with where.open() as log:
        kept = log.sign_head()  # what `gatehouse audit checkpoint` prints, shipped off the host
    assert kept is not None and kept.seq == 25
    truncated_with_anchor(where)
    sql("DELETE FROM checkpoint WHERE seq > 15")(where)
    assert verify(where.trail).ok  # the database alone cannot tell: nothing signed names a loss
    report = verify(where.trail, kept=[kept])
    assert (report.ok, report.first_bad_seq) == (False, 16)
    assert "records 16 to 25 were removed from the tail" in report.problem


# -- bundles ------------------------------------------------------------------------------------


@pytest.fixture
def bundle(where: TrailPlace, tmp_path: Path) -> Path:
    fill(where, 25, checkpoint_every=10)
    out = tmp_path / "bundle.jsonl"
    summary = export(where.trail, out)
    assert (summary.records, summary.checkpoints, summary.head_seq, summary.left_out) == \
        (25, 3, 25, 0)
    return out


def lines(bundle: Path) -> list[bytes]:
    return bundle.read_bytes().splitlines(keepends=True)


def test_a_bundle_verifies_on_its_own(bundle: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    moved = bundle.rename(elsewhere / "bundle.jsonl")
    public = elsewhere / "gateway.pub"
    public.write_bytes((tmp_path / "audit-signing.pub").read_bytes())
    for path in tmp_path.glob("audit[.-]*"):
        path.unlink()  # no state directory at hand (nor, on SQLite, the trail)
    report = verify_bundle(moved, public_key=public)
    assert (report.ok, report.records, report.checkpoints, report.latest_checkpoint) == \
        (True, 25, 3, 25)
    assert verify_bundle(moved).ok  # with the key inside it


def test_a_bundle_is_the_records_as_hashed(bundle: Path, where: TrailPlace) -> None:
    header, *rest = lines(bundle)
    meta = orjson.loads(header)
    assert (meta["format"], meta["records"], meta["checkpoints"]) == \
        ("gatehouse-audit-bundle/1", 25, 3)
    with where.db() as db:
        stored = [text.encode() + b"\n" for (text,) in
                  db.execute("SELECT record FROM audit ORDER BY seq")]
    assert rest[3:28] == stored


def edit_line(number: int, old: bytes, new: bytes) -> Callable[[list[bytes]], list[bytes]]:
    def run(found: list[bytes]) -> list[bytes]:
        assert old in found[number]
        found[number] = found[number].replace(old, new)
        return found
    return run


# line 0 header, 1-3 checkpoints (10, 20, 25), 4-28 records 1-25, 29 signature
BUNDLE_TAMPERING = [
    pytest.param(edit_line(8, b'"n":4', b'"n":5'),
                 VerifyReport(False, 4, 5, "record 5 was altered or replaced: record 6 links to a "
                                           "different hash"), id="alter a record"),
    pytest.param(edit_line(28, b'"allow"', b'"deny"'),
                 VerifyReport(False, 24, 25, "record 25 was altered: its hash does not match the "
                                             "bundle's head"), id="alter the last record"),
    pytest.param(lambda found: found[:9] + found[10:],
                 VerifyReport(False, 5, 6, "record 6 is missing or out of place: the bundle goes "
                                           "from record 5 to record 7"), id="delete a record"),
    pytest.param(lambda found: [*found[:9], found[10], found[9], *found[11:]],
                 VerifyReport(False, 5, 6, "record 6 is missing or out of place: the bundle goes "
                                           "from record 5 to record 7"), id="swap two records"),
    pytest.param(lambda found: [*found[:9], found[8], *found[10:]],
                 VerifyReport(False, 5, 6, "record 6 is out of place: its line holds record 5"),
                 id="repeat a record"),
    pytest.param(edit_line(2, b'"seq":20', b'"seq":21'),
                 VerifyReport(False, 25, None, "the checkpoint at record 21 has a bad signature: "
                                               "it was altered after it was signed"),
                 id="alter a checkpoint"),
    pytest.param(edit_line(0, b'"exported_at":"', b'"exported_at":"1'),
                 VerifyReport(False, 25, None, "the bundle was altered after export: its "
                                               "signature does not match its content"),
                 id="alter the header"),
    pytest.param(lambda found: found[:-1],
                 VerifyReport(False, 25, None, "the bundle ends early: it does not end with its "
                                               "signature"), id="drop the signature"),
    pytest.param(lambda found: [*found, found[4]],
                 VerifyReport(False, 25, None, "the bundle was altered after export: there are "
                                               "lines after its signature"),
                 id="add a line at the end"),
    pytest.param(lambda found: found[:20],
                 VerifyReport(False, 16, 17, "the bundle ends after record 16: its header "
                                             "announces 25 records"), id="cut short"),
]


@pytest.mark.parametrize(("tamper", "report"), BUNDLE_TAMPERING)
def test_a_tampered_bundle_fails(bundle: Path, tamper: Callable[[list[bytes]], list[bytes]],
                                 report: VerifyReport) -> None:
    bundle.write_bytes(b"".join(tamper(lines(bundle))))
    assert verify_bundle(bundle) == report


def test_a_bundle_cut_and_resigned_by_someone_else_fails_with_the_real_key(
        bundle: Path, where: TrailPlace, tmp_path: Path) -> None:
    """An intruder drops the last five records and the checkpoints naming them, and signs what is
    left with a key of their own, put inside the bundle: whole, but not the gateway's."""
    forger = Ed25519PrivateKey.generate()
    header, *rest = lines(bundle)
    meta = orjson.loads(header)
    with where.db() as db:
        last = db.execute("SELECT hash FROM audit WHERE seq = 20").fetchone()[0]
    records = [line.decode().rstrip("\n") for line in rest[3:23]]
    with (tmp_path / "forged.jsonl").open("wb") as out:
        checkpoints.write_bundle(out, forger, {"exported_at": meta["exported_at"],
                                               "source": meta["source"],
                                               "head": {"seq": 20, "hash": last}},
                                 [], records, 20)
    assert verify_bundle(tmp_path / "forged.jsonl").ok  # whole, by the key inside it
    report = verify_bundle(tmp_path / "forged.jsonl",
                           public_key=tmp_path / "audit-signing.pub")
    assert (report.ok, report.first_bad_seq) == (False, None)
    assert report.problem.startswith("the bundle was signed by another key")


def test_a_bundle_checked_against_checkpoints_kept_elsewhere(where: TrailPlace,
                                                             tmp_path: Path) -> None:
    fill(where, 25, checkpoint_every=10)
    kept = signed(where)[-1]
    truncated_with_anchor(where)
    sql("DELETE FROM checkpoint WHERE seq > 15")(where)
    export(where.trail, tmp_path / "bundle.jsonl")
    assert verify_bundle(tmp_path / "bundle.jsonl").ok
    report = verify_bundle(tmp_path / "bundle.jsonl", kept=[kept])
    assert (report.ok, report.first_bad_seq) == (False, 16)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "is not a Gatehouse audit bundle: "),
    (b'{"format": "something else"}\n', "is not a Gatehouse audit bundle: its first line does not "
                                        "say `gatehouse-audit-bundle/1`"),
])
def test_something_else_is_not_a_bundle(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "b").write_bytes(content)
    report = verify_bundle(tmp_path / "b")
    assert (report.ok, report.first_bad_seq) == (False, None)
    assert report.problem.startswith(f"`{tmp_path / 'b'}` {problem}")


def test_export_while_the_gateway_appends_is_one_consistent_snapshot(
        where: TrailPlace, tmp_path: Path) -> None:
    fill(where, 50, checkpoint_every=7)
    stop = threading.Event()

    def keep_appending() -> None:
        with where.open(checkpoint_every=7) as log:
            while not stop.is_set():
                log.append_sync("call.decided", {"n": "more"})

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        summaries = [export(where.trail, tmp_path / f"b{n}.jsonl") for n in range(5)]
    finally:
        stop.set()
        writer.join()
    assert summaries[-1].records > 50
    for n, summary in enumerate(summaries):
        report = verify_bundle(tmp_path / f"b{n}.jsonl")
        assert (report.ok, report.records) == (True, summary.records), report.problem


def test_export_refuses_a_missing_log_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="there is no audit log at"):
        export(tmp_path / "audit.db", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


# -- the CLI ------------------------------------------------------------------------------------


def gatehouse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def state(where: TrailPlace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state directory with a trail of 25 records; on PostgreSQL, `$GATEHOUSE_STORE` names
    the database, as an operator's environment would."""
    fill(where, 25, checkpoint_every=10)
    if where.url:
        monkeypatch.setenv("GATEHOUSE_STORE", where.url)
    yield where.directory


def test_cli_key_prints_the_public_key(state: Path) -> None:
    result = gatehouse("audit", "key", "--state", str(state))
    assert result.returncode == 0
    assert result.stdout.encode() == (state / "audit-signing.pub").read_bytes()
    kid = checkpoints.key_id(load_public_key(state / "audit-signing.pub"))
    assert f"key id {kid}" in result.stderr


def test_cli_key_makes_the_key_pair_on_first_use(tmp_path: Path) -> None:
    result = gatehouse("audit", "key", "--state", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "audit-signing.key").stat().st_mode) == 0o600
    public = serialization.load_pem_public_key(result.stdout.encode())
    assert checkpoints.public_pem(public) == result.stdout.encode()  # type: ignore[arg-type]


def test_cli_verify_checks_checkpoints_with_an_auditors_key(state: Path, where: TrailPlace,
                                                            tmp_path: Path) -> None:
    auditor = tmp_path / "auditor.pub"
    auditor.write_text(gatehouse("audit", "key", "--state", str(state)).stdout)
    result = gatehouse("audit", "verify", "--state", str(state), "--public-key", str(auditor))
    assert result.returncode == 0, result.stderr
    assert "25 records, chain intact; 3 signed checkpoints good, the newest at record 25" in \
        result.stdout

    tamper = sql(f"UPDATE checkpoint SET signature = {FLIPPED} WHERE seq = 10")
    tamper(where)
    result = gatehouse("audit", "verify", "--state", str(state), "--public-key", str(auditor))
    assert result.returncode == 1
    assert result.stderr == ("audit trail BROKEN: the checkpoint at record 10 has a bad "
                             "signature: it was altered after it was signed\n")


def test_cli_verify_finds_a_cut_below_a_checkpoint_despite_a_rewritten_anchor(
        state: Path, where: TrailPlace) -> None:
    truncated_with_anchor(where)
    result = gatehouse("audit", "verify", "--state", str(state))
    assert result.returncode == 1
    assert result.stderr.startswith("audit trail BROKEN at record 16: records 16 to 25 were "
                                    "removed from the tail: the checkpoint signed at ")


def test_cli_checkpoint_kept_elsewhere_then_verify_with_it(state: Path, where: TrailPlace,
                                                           tmp_path: Path) -> None:
    result = gatehouse("audit", "checkpoint", "--state", str(state))
    assert result.returncode == 0, result.stderr
    kept = tmp_path / "kept.jsonl"
    kept.write_text(result.stdout)
    assert Checkpoint.from_json(orjson.loads(result.stdout)).seq == 25
    truncated_with_anchor(where)
    sql("DELETE FROM checkpoint WHERE seq > 15")(where)
    assert gatehouse("audit", "verify", "--state", str(state)).returncode == 0
    result = gatehouse("audit", "verify", "--state", str(state), "--checkpoint", str(kept))
    assert result.returncode == 1
    assert "records 16 to 25 were removed from the tail" in result.stderr


def test_cli_export_then_verify_the_bundle_offline(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "trail.jsonl"
    out.parent.mkdir()
    result = gatehouse("audit", "export", "--state", str(state), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"exported 25 records (to record 25) and 3 checkpoints to "
                                    f"{out}, signed with key ")
    public = tmp_path / "elsewhere" / "gateway.pub"
    public.write_bytes((state / "audit-signing.pub").read_bytes())
    result = gatehouse("audit", "verify", "--bundle", str(out), "--public-key", str(public),
                       "--state", str(tmp_path / "no-such-state"))
    assert result.returncode == 0, result.stderr
    assert "audit bundle ok: 25 records, chain intact; 3 signed checkpoints good, the newest at " \
           "record 25, bundle signature good" in result.stdout

    out.write_bytes(out.read_bytes().replace(b'"n":4', b'"n":5'))
    result = gatehouse("audit", "verify", "--bundle", str(out), "--public-key", str(public))
    assert result.returncode == 1
    assert result.stderr == ("audit bundle BROKEN at record 5: record 5 was altered or "
                             "replaced: record 6 links to a different hash\n")


def test_cli_export_of_a_missing_trail_fails_clearly(tmp_path: Path) -> None:
    result = gatehouse("audit", "export", "--state", str(tmp_path), "--out",
                       str(tmp_path / "x.jsonl"))
    assert result.returncode == 1
    assert result.stderr.startswith("gatehouse: there is no audit log at ")
