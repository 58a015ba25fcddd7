"""The audit trail of a real gateway: complete, verifiable, tamper-evident, and a precondition.

Tampering is done the way an intruder would, with raw SQL on the database file; the check is
the operator's: `gatehouse audit verify`, which must exit non-zero naming the first bad record.
The gateway signs checkpoints of the trail; an auditor verifies them, and an exported bundle,
with their own copy of the public key.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import ssl
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ACME, Running, start_gateway
from tests.e2e.gatehouse import Gatehouse
from tests.e2e.upstream import Upstream


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    """A gateway that has decided a few calls, then stopped: its state is the evidence."""
    running = start_gateway(tmp_path_factory.mktemp("trail"), ACME, upstream)
    trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
    with httpx.Client(proxy=running.proxy("support-bot"), verify=trust, timeout=15) as c:
        for n in range(6):
            c.get(f"https://docs.acme.example/page/{n}")
        c.post("https://api.sendgrid.com/v3/mail/send",
               json={"personalizations": [{"to": [{"email": "a@competitor.example"}]}]})
    yield running
    running.gh.stop()


def copy_state(trail: Running, tmp: Path) -> Gatehouse:
    trail.gh.stop()
    shutil.copytree(trail.gh.state, tmp / "state")
    return Gatehouse(tmp / "state", trail.gh.policy)


def tamper(state: Path, sql: str) -> None:
    with sqlite3.connect(state / "audit.db") as db:
        db.execute(sql)


def test_every_call_is_recorded_with_the_decision_facts(trail: Running) -> None:
    records = trail.gh.admin_call("GET", "/v1/audit?event=call.decided",
                                  trail.people["auditor"]).json()["items"]
    assert [r["decision"] for r in records] == ["allow"] * 6 + ["denied"]
    denied = records[-1]
    assert denied["agent"] == "support-bot" and denied["action"] == "email.send"
    assert denied["params"] == {"recipient": "a@competitor.example"}
    assert denied["rule_ids"] == ["no-email-to-competitors"]
    assert denied["url"] == "https://api.sendgrid.com/v3/mail/send"
    assert len(denied["request_hash"]) == 64 and denied["snapshot_id"].startswith("4.2.1:")
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs)


@pytest.mark.parametrize(("query", "count"), [
    ("decision=denied", 1), ("action=http.read", 6), ("agent=ops-bot", 0),
    ("event=call.decided&limit=2", 2), ("since=2000-01-01T00:00:00Z&event=call.decided", 7),
    ("until=2000-01-01T00:00:00Z", 0),
])
def test_the_trail_can_be_filtered(trail: Running, query: str, count: int) -> None:
    items = trail.gh.admin_call("GET", f"/v1/audit?{query}",
                                trail.people["auditor"]).json()["items"]
    assert len(items) == count


def test_a_bad_filter_is_a_clear_error(trail: Running) -> None:
    response = trail.gh.admin_call("GET", "/v1/audit?since=yesterday", trail.people["auditor"])
    assert response.status_code == 422 and "ISO 8601" in response.json()["error"]["message"]


def test_reviewers_cannot_read_the_trail(trail: Running) -> None:
    assert trail.gh.admin_call("GET", "/v1/audit", trail.people["reviewer"]).status_code == 403


def test_an_untouched_trail_verifies(trail: Running, tmp_path: Path) -> None:
    result = copy_state(trail, tmp_path).cli("audit", "verify", check=False)
    assert result.returncode == 0, result.stderr
    assert "chain intact" in result.stdout


def swap(a: int, b: int) -> list[str]:
    """Exchange two records' places in the sequence (through a free number)."""
    return [f"UPDATE audit SET seq = -1 WHERE seq = {a}",
            f"UPDATE audit SET seq = {a} WHERE seq = {b}",
            f"UPDATE audit SET seq = {b} WHERE seq = -1"]


# kind -> (SQL an intruder runs, given the last seq; what `verify` must say)
TAMPERING: dict[str, tuple[Callable[[int], list[str]], str]] = {
    "edit": (lambda last: ["UPDATE audit SET record = replace(record, 'competitor', 'partner')"
                           f" WHERE seq = {last}"], "record {last} was altered"),
    "delete": (lambda last: [f"DELETE FROM audit WHERE seq = {last - 3}"],
               "record {gap} is missing"),
    "reorder": (lambda last: swap(last - 2, last - 1), "record {a} is out of order"),
    "truncate": (lambda last: [f"DELETE FROM audit WHERE seq >= {last - 1}"],
                 "were removed from the tail"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_tampering_is_detected_and_named(trail: Running, tmp_path: Path, kind: str) -> None:
    gh = copy_state(trail, tmp_path)
    with sqlite3.connect(gh.state / "audit.db") as db:
        last = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
    steps, message = TAMPERING[kind]
    for sql in steps(last):
        tamper(gh.state, sql)
    result = gh.cli("audit", "verify", check=False)
    assert result.returncode == 1
    assert message.format(last=last, gap=last - 3, a=last - 2) in result.stderr


def test_the_gateway_signs_its_trail_with_a_private_key_only_it_can_read(
        trail: Running, tmp_path: Path) -> None:
    gh = copy_state(trail, tmp_path)
    assert stat.S_IMODE((trail.gh.state / "audit-signing.key").stat().st_mode) == 0o600
    auditor = tmp_path / "auditor.pub"
    auditor.write_text(gh.cli("audit", "key").stdout)
    result = gh.cli("audit", "verify", "--public-key", str(auditor))
    with sqlite3.connect(gh.state / "audit.db") as db:
        last = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
    # stopping the gateway signed its head
    assert f"signed checkpoints good, the newest at record {last}" in result.stdout


def test_a_cut_below_a_checkpoint_is_found_though_the_anchor_was_rewritten(
        trail: Running, tmp_path: Path) -> None:
    gh = copy_state(trail, tmp_path)
    with sqlite3.connect(gh.state / "audit.db") as db:
        last = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
        db.execute(f"DELETE FROM audit WHERE seq > {last - 2}")
        seq, digest = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                                 ).fetchone()
    (gh.state / "audit.head.json").write_text(json.dumps({"seq": seq, "hash": digest}))
    result = gh.cli("audit", "verify", check=False)
    assert result.returncode == 1
    assert f"BROKEN at record {last - 1}: records {last - 1} to {last} were removed from the " \
           "tail: the checkpoint signed at" in result.stderr


def test_an_exported_bundle_verifies_offline_and_tampering_with_it_fails(
        trail: Running, tmp_path: Path) -> None:
    gh = copy_state(trail, tmp_path)
    auditor = tmp_path / "auditor.pub"
    auditor.write_text(gh.cli("audit", "key").stdout)
    bundle = tmp_path / "trail.jsonl"
    gh.cli("audit", "export", "--out", str(bundle))
    shutil.rmtree(gh.state)  # offline: nothing of the gateway's is left but the bundle
    result = gh.cli("audit", "verify", "--bundle", str(bundle), "--public-key", str(auditor))
    assert "audit bundle ok: " in result.stdout and "bundle signature good" in result.stdout
    bundle.write_text(bundle.read_text().replace("competitor", "partner"))
    result = gh.cli("audit", "verify", "--bundle", str(bundle), "--public-key", str(auditor),
                    check=False)
    assert result.returncode == 1 and "audit bundle BROKEN at record" in result.stderr


def test_a_call_whose_record_cannot_be_written_is_refused(
        tmp_path: Path, upstream: Upstream) -> None:
    """A real fault: another process holds the audit database's write lock."""
    running = start_gateway(tmp_path, ACME, upstream)
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        db = sqlite3.connect(running.gh.state / "audit.db", isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(30)
        db.execute("ROLLBACK")
        db.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        before = len(upstream.received)
        with httpx.Client(proxy=running.proxy("ops-bot"), timeout=30) as c:
            started = time.monotonic()
            response = c.get("http://docs.acme.example/while-locked")
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "gateway_error"
        assert "audit" in response.json()["error"]["reason"]
        assert len(upstream.received) == before
        assert time.monotonic() - started < 20
    finally:
        release.set()
        holder.join()
        running.gh.stop()
