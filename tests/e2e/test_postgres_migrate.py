"""`gatehouse migrate sqlite-to-postgres` on the state a real gateway wrote to SQLite: every kind
of state arrives in PostgreSQL, the audit chain verifies there with the same hashes and
checkpoint signatures, and a gateway restarted on `--store postgresql://...` carries on from it
(the held call's retry attaches to its pending item). A running gateway, a non-empty target and
a broken trail are refused with nothing written."""

from __future__ import annotations

import sqlite3
import ssl
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream
from tests.gateway.postgres.places import connect, schema_fixture

POLICY = """\
version: 1
policy: migrate
revision: "1"
default: deny
egress:
  allow: [api.github.com, tools.acme.internal]
actions:
  - {type: http.read, match: {method: [GET], host: api.github.com}}
  - {type: crm.read, match: {method: [GET], host: tools.acme.internal}}
  - {type: github.write, match: {method: [POST], host: api.github.com}, tags: [write]}
rules:
  - {id: reads, when: {action: [http.read, crm.read]}, decision: allow}
  - {id: writes, when: {action: github.write}, decision: require_approval, tier: 1}
approvals:
  hold_seconds: 0
  tiers: {1: {approvals: 1}}
responses:
  tier: patterns
  detect: [US_SSN]
  quarantine: [US_SSN]
"""
TABLES = ("tokens", "halts", "policy_snapshots", "pending_items", "pending_votes",
          "pending_opens", "grants", "quarantine", "incidents", "audit", "checkpoint")


@dataclass
class Embedded:
    """A stopped SQLite gateway's state, with the call left held in it."""

    running: Running
    held_url: str
    held_id: str


url = schema_fixture("module")


def agent(running: Running) -> httpx.Client:
    trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
    return httpx.Client(proxy=running.proxy("ops-bot"), verify=trust, timeout=30)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Embedded]:
    """Every kind of state, made through the gateway's own API on SQLite (the default store)."""
    tmp = tmp_path_factory.mktemp("embedded")
    (tmp / "policy.yaml").write_text(POLICY)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("ops-bot",))
    gh, people, marker = running.gh, running.people, uuid.uuid4().hex
    with agent(running) as client:
        allowed = client.get(f"https://api.github.com/repos/{marker}")
        assert allowed.status_code == 200
        assert client.get("https://tools.acme.internal/canned/customer").status_code == 502
        approved = client.post(f"https://api.github.com/repos/{marker}/approved")
        held_url = f"https://api.github.com/repos/{marker}/held"
        held = client.post(held_url)
    assert (approved.status_code, held.status_code) == (503, 503)
    approved_id = approved.json()["error"]["pending_id"]
    assert gh.admin_call("POST", f"/v1/pending/{approved_id}/approve", people["reviewer"],
                         json={"reason": "ok"}).status_code == 200
    assert gh.admin_call("GET", f"/v1/pending/{held.json()['error']['pending_id']}",
                         people["reviewer"]).status_code == 200  # opened, not voted on
    assert gh.admin_call("POST", "/v1/grants", people["admin"], json={
        "agent": "ops-bot", "action": "deploy.restart", "expires_in": "30m", "max_uses": 1,
        "reason": "clean-up"}).status_code == 201
    assert gh.admin_call("POST", "/v1/incidents", people["responder"], json={
        "title": "drill", "severity": "SEV-4",
        "request_id": allowed.headers["X-Gatehouse-Request-Id"]}).status_code == 201
    assert gh.admin_call("POST", "/v1/halts", people["responder"], json={
        "scope": "host", "target": "example.org", "reason": "drill"}).status_code == 201
    yield Embedded(running, held_url, held.json()["error"]["pending_id"])
    gh.stop()


def sqlite_rows(path: Path, table: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """The table's columns, and its rows in insertion order."""
    with closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        return columns, db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def postgres_rows(url: str, table: str,
                  columns: list[str]) -> tuple[bool, list[tuple[object, ...]]]:
    """Those columns of the table in `seq` order where it has one (True), else sorted."""
    with connect(url) as db:
        ordered = db.execute("SELECT 1 FROM information_schema.columns WHERE table_name = %s "
                             "AND column_name = 'seq' AND table_schema = current_schema()",
                             (table,)).fetchone()
        rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}"
                          + (" ORDER BY seq" if ordered else "")).fetchall()
    return ordered is not None, rows if ordered else sorted(rows)


def test_a_running_gateway_is_refused_and_nothing_is_written(embedded: Embedded,
                                                             url: str) -> None:
    refused = embedded.running.gh.cli("migrate", "sqlite-to-postgres", "--to", url, check=False)
    assert refused.returncode == 1
    assert "is open in another process: stop the gateway" in refused.stderr
    with connect(url) as db:
        assert db.execute("SELECT count(*) FROM information_schema.tables "
                          "WHERE table_schema = current_schema()").fetchone() == (0,)


def test_the_whole_state_moves_and_the_trail_verifies_with_the_same_hashes_and_signatures(
        embedded: Embedded, url: str) -> None:
    gh = embedded.running.gh
    gh.stop()  # closing signs the head
    moved = gh.cli("migrate", "sqlite-to-postgres", "--to", url)
    assert "audit trail ok in PostgreSQL: " in moved.stdout
    for table in TABLES:
        columns, stored = sqlite_rows(gh.state / ("audit.db" if table in ("audit", "checkpoint")
                                                  else "state.db"), table)
        assert stored, f"the gateway run made no {table} rows"
        in_order, copied = postgres_rows(url, table, columns)
        stored = [tuple(v.decode() if isinstance(v, bytes) and table == "incidents" else v
                        for v in row) for row in stored]  # SQLite keeps that JSON as a blob
        assert copied == (stored if in_order else sorted(stored)), table
    verified = gh.cli("audit", "verify", "--store", url)
    assert "chain intact" in verified.stdout and "signed checkpoints good" in verified.stdout

    again = gh.cli("migrate", "sqlite-to-postgres", "--to", url, check=False)
    assert again.returncode == 1
    assert "the target database already holds Gatehouse state" in again.stderr


def test_a_gateway_on_postgresql_carries_on_the_held_call(embedded: Embedded, url: str,
                                                         upstream: Upstream) -> None:
    running = embedded.running
    running.gh.extra = ["--store", url]
    running.gh.start()
    with agent(running) as client:
        retry = client.post(embedded.held_url)
        assert retry.json()["error"]["pending_id"] == embedded.held_id  # attached, not new
        assert running.gh.admin_call("POST", f"/v1/pending/{embedded.held_id}/approve",
                                     running.people["reviewer"],
                                     json={"reason": "ok"}).status_code == 200
        passed = client.post(embedded.held_url)
    assert (passed.status_code, passed.headers["X-Gatehouse-Decision"]) == (200, "approved")
    assert len(upstream.requests_to(embedded.held_url.removeprefix("https://api.github.com"))) \
        == 1
    running.gh.stop()
    assert running.gh.cli("audit", "verify", "--store", url).returncode == 0


def test_a_broken_trail_is_not_moved(embedded: Embedded, tmp_path: Path) -> None:
    gh = embedded.running.gh
    with closing(sqlite3.connect(gh.state / "audit.db")) as db, db:
        db.execute("UPDATE audit SET record = record || ' ' WHERE seq = 3")
    refused = gh.cli("migrate", "sqlite-to-postgres", "--to", "postgresql://nobody@127.0.0.1:1/x",
                     check=False)
    assert refused.returncode == 1
    assert "does not verify, so it was not moved: record 3 was altered" in refused.stderr
