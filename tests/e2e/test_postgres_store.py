"""A real gateway on `--store postgresql://...`: every store and the audit trail live in the
database, the state directory keeps only files (CA, signing key, evidence), and `gatehouse audit
verify --store ...` checks the trail the gateway wrote there."""

from __future__ import annotations

import concurrent.futures
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream
from tests.gateway.postgres.places import connect, schema_fixture

POLICY = """\
version: 1
policy: postgres-store
revision: "1"
default: deny
egress:
  allow: [api.github.com]
actions:
  - type: http.read
    match: { method: [GET] }
  - type: github.write
    match: { method: [POST], host: api.github.com }
    tags: [write]
rules:
  - id: reads
    when: { action: http.read }
    decision: allow
  - id: writes
    when: { action: github.write }
    decision: require_approval
    tier: 1
    reason: GitHub writes are reviewed
approvals:
  hold_seconds: 20
  expire_after: 1h
  tiers:
    1: { approvals: 1 }
"""


url = schema_fixture("module")


def start_on_postgres(tmp: Path, upstream: Upstream, url: str) -> Running:
    """A gateway on `--store url` with POLICY, its state directory in `tmp`."""
    (tmp / "policy.yaml").write_text(POLICY)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GATEHOUSE_STORE", url)  # `gatehouse token create` as operators script it
        return start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("ops-bot",),
                             extra=["--store", url])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
            url: str) -> Iterator[Running]:
    running = start_on_postgres(tmp_path_factory.mktemp("postgres-store"), upstream, url)
    yield running
    running.gh.stop()


def agent(running: Running) -> httpx.Client:
    trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
    return httpx.Client(proxy=running.proxy("ops-bot"), verify=trust, timeout=30)


def held_item(running: Running, marker: str) -> dict[str, object]:
    reviewer = running.people["reviewer"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for item in running.gh.admin_call("GET", "/v1/pending", reviewer).json()["items"]:
            full = running.gh.admin_call("GET", f"/v1/pending/{item['id']}", reviewer).json()
            if marker in str(full["request"]["url"]):
                return full
        time.sleep(0.05)
    raise AssertionError(f"no pending item for {marker}")


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with connect(url) as db:
        return db.execute(sql).fetchall()


def test_a_gateway_on_postgresql_forwards_holds_and_releases_an_approved_call(
        gateway: Running, upstream: Upstream, url: str) -> None:
    marker = uuid.uuid4().hex
    with agent(gateway) as client, concurrent.futures.ThreadPoolExecutor() as pool:
        assert client.get(f"https://api.github.com/repos/{marker}").status_code == 200
        waiting = pool.submit(client.post, f"https://api.github.com/repos/{marker}/issues",
                              json={"title": "bug"})
        item = held_item(gateway, marker)
        assert upstream.requests_to(f"/repos/{marker}/issues") == []  # held, not sent
        approved = gateway.gh.admin_call("POST", f"/v1/pending/{item['id']}/approve",
                                         gateway.people["reviewer"], json={"reason": "ok"})
        assert approved.status_code == 200, approved.text
        response = waiting.result(timeout=20)
    assert (response.status_code, response.headers["X-Gatehouse-Decision"]) == (200, "approved")
    assert len(upstream.requests_to(f"/repos/{marker}/issues")) == 1

    # the state is in PostgreSQL: the item, the tokens, the decisions; no SQLite file was made
    assert rows(url, f"SELECT state FROM pending_items WHERE id = '{item['id']}'") == \
        [("consumed",)]
    assert rows(url, "SELECT count(*) FROM tokens")[0][0] == 5  # an agent and four people
    decided = rows(url, "SELECT decision FROM audit WHERE event = 'call.decided' ORDER BY seq")
    assert [d for (d,) in decided][-2:] == ["allow", "approved"]
    state = gateway.gh.state
    assert not list(state.glob("*.db")) and (state / "audit-signing.key").is_file()


def test_audit_verify_checks_the_trail_in_postgresql(gateway: Running, url: str,
                                                     tmp_path: Path) -> None:
    gateway.gh.stop()  # closing signs the head
    result = gateway.gh.cli("audit", "verify", "--store", url)
    records = rows(url, "SELECT count(*) FROM audit")[0][0]
    assert f"audit trail ok: {records} records, chain intact; " in result.stdout
    assert "signed checkpoints good" in result.stdout

    out = tmp_path / "trail.jsonl"
    exported = gateway.gh.cli("audit", "export", "--store", url, "--out", str(out))
    assert exported.stdout.startswith(f"exported {records} records")
    assert gateway.gh.cli("audit", "verify", "--bundle", str(out)).returncode == 0

    with connect(url) as db:  # an intruder with database access rewrites a decision
        db.execute("UPDATE audit SET record = replace(record, '\"approved\"', '\"denied\"') "
                   "WHERE decision = 'approved'")
    broken = gateway.gh.cli("audit", "verify", "--store", url, check=False)
    assert broken.returncode == 1
    assert broken.stderr.startswith("audit trail BROKEN at record ")
    assert "was altered: its hash does not match its content" in broken.stderr


def test_an_unreachable_store_stops_the_command_and_names_it_without_its_password(
        gateway: Running) -> None:
    store = "postgresql://gatehouse:hunter2@127.0.0.1:1/gatehouse"
    for args in (["audit", "verify"], ["token", "create", "--agent", "x"],
                 ["run", "--policy", str(gateway.gh.policy)]):
        result = gateway.gh.cli(*args, "--store", store, check=False)
        assert result.returncode == 1
        assert "PostgreSQL at `postgresql://gatehouse@127.0.0.1:1/gatehouse`" in result.stderr
        assert "hunter2" not in result.stderr
