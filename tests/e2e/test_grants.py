"""Standing grants through the real gateway: tier-1 calls pass, counted; nothing else does."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: grants-test
revision: "1"
default: deny
egress:
  allow: [api.github.com, api.stripe.com]
actions:
  - type: github.write
    match: { method: [POST, PUT], host: api.github.com }
  - type: payments.refund
    match: { method: POST, host: api.stripe.com, path: /v1/refunds }
rules:
  - id: github-writes
    when: { action: github.write }
    decision: require_approval
    tier: 1
  - id: refunds
    when: { action: payments.refund }
    decision: require_approval
    tier: 2
approvals:
  hold_seconds: 0
  tiers: { 1: { approvals: 1 }, 2: { approvals: 1 } }
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("grants")
    (tmp / "policy.yaml").write_text(POLICY)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("ops-bot", "other-bot"))
    yield running
    running.gh.stop()


def client(running: Running, agent: str = "ops-bot") -> httpx.Client:
    trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
    return httpx.Client(proxy=running.proxy(agent), verify=trust, timeout=15)


def grant(running: Running, **body: object) -> httpx.Response:
    return running.gh.admin_call("POST", "/v1/grants", running.people["admin"], json={
        "agent": "ops-bot", "action": "github.*", "expires_in": "30m", "max_uses": 2,
        "reason": "incident clean-up", **body})


def test_a_grant_lets_tier_1_calls_through_as_often_as_it_says(gateway: Running,
                                                               upstream: Upstream) -> None:
    created = grant(gateway)
    assert created.status_code == 201
    with client(gateway) as bot:
        passed = [bot.put(f"https://api.github.com/grant/{n}") for n in range(3)]
    assert [r.status_code for r in passed] == [200, 200, 503]
    assert passed[0].headers["X-Gatehouse-Decision"] == "approved"
    assert len(upstream.requests_to("/grant/0")) == 1 and upstream.requests_to("/grant/2") == []
    uses = gateway.gh.admin_call("GET", "/v1/audit?event=grant.used",
                                 gateway.people["auditor"]).json()["items"]
    assert [u["use"] for u in uses if u["grant_id"] == created.json()["id"]] == [1, 2]


def test_a_grant_never_covers_tier_2_or_another_agent(gateway: Running) -> None:
    grant(gateway, action="payments.*")
    grant(gateway, max_uses=5)
    with client(gateway) as bot:
        assert bot.post("https://api.stripe.com/v1/refunds", data={"a": "1"}).status_code == 503
    with client(gateway, "other-bot") as other:
        assert other.put("https://api.github.com/other").status_code == 503


def test_a_revoked_grant_stops_at_once(gateway: Running) -> None:
    created = grant(gateway, agent="other-bot").json()
    with client(gateway, "other-bot") as other:
        assert other.put("https://api.github.com/revoke/1").status_code == 200
        revoked = gateway.gh.admin_call("DELETE", f"/v1/grants/{created['id']}",
                                        gateway.people["responder"])
        assert revoked.status_code == 200
        assert other.put("https://api.github.com/revoke/2").status_code == 503


@pytest.mark.parametrize(("role", "status"), [("admin", 201), ("reviewer", 403),
                                              ("responder", 403), ("auditor", 403)])
def test_only_admins_create_grants(gateway: Running, role: str, status: int) -> None:
    response = gateway.gh.admin_call("POST", "/v1/grants", gateway.people[role], json={
        "agent": "ops-bot", "action": "github.write", "expires_in": "1m", "max_uses": 1,
        "reason": "r"})
    assert response.status_code == status


@pytest.mark.parametrize(("body", "words"), [
    ({"expires_in": "3d"}, "at most 24h"),
    ({"action": "*.*"}, "no other wildcards"),
    ({"action": "[a-z]*"}, "no other wildcards"),
    ({"agent": "admin-person"}, "own identity"),
])
def test_a_bad_grant_says_what_is_wrong(gateway: Running, body: dict[str, str],
                                        words: str) -> None:
    response = grant(gateway, **body)
    assert response.status_code in (403, 422)
    assert words in response.json()["error"]["message"]
