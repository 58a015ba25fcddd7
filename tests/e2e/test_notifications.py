"""Webhook notifications, escalation and timeouts through the real gateway.

Real receivers on 127.0.0.1 get what reviewers would see in Slack; one refuses each message
once, one address refuses connections and one accepts them and never answers, and none of
that may slow an agent or a reviewer down. Policies with a 2 s `escalate_after` or
`expire_after` show items moving up the chain and each `on_timeout` at expiry.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.gatehouse import free_port
from tests.e2e.upstream import Upstream
from tests.e2e.webhooks import WebhookReceiver, webhook_receiver

POLICY = """\
version: 1
policy: notifications-test
revision: "1"
default: deny
egress:
  allow: [api.github.com]
actions:
  - type: github.put
    match: {{ method: PUT, host: api.github.com }}
  - type: github.patch
    match: {{ method: PATCH, host: api.github.com }}
  - type: github.delete
    match: {{ method: DELETE, host: api.github.com }}
rules:
  - id: puts
    when: {{ action: github.put }}
    decision: require_approval
    tier: 1
    route: ops
    reason: Writes are reviewed
  - id: patches
    when: {{ action: github.patch }}
    decision: require_approval
    tier: 2
    route: ops
    reason: Small edits are reviewed if someone is around
  - id: deletes
    when: {{ action: github.delete }}
    decision: require_approval
    tier: 3
    route: ops
    reason: Deletes go up the chain when nobody answers
approvals:
  hold_seconds: 0
  expire_after: {expire_after}
{escalate_after}  escalation: [ops, managers]
  tiers:
    1: {{ approvals: 1 }}
    2: {{ approvals: 1, on_timeout: allow }}
    3: {{ approvals: 1, on_timeout: escalate }}
  groups:
    ops: [dave]
    managers: [frank]
"""
REVIEWERS = ("dave", "frank", "mallory")
TIMEOUT_REVIEWER = "gatehouse:on_timeout"


@dataclass
class Notified:
    running: Running
    reviewers: dict[str, str]
    receiver: WebhookReceiver

    def call(self, method: str, path: str) -> httpx.Response:
        trust = ssl.create_default_context(cafile=self.running.gh.ca_bundle)
        with httpx.Client(proxy=self.running.proxy("ops-bot"), verify=trust,
                          timeout=30) as agent:
            return agent.request(method, f"https://api.github.com{path}")

    def held(self, method: str = "PUT") -> tuple[str, str]:
        """A new held call: its path and pending id."""
        path = f"/x/{uuid.uuid4().hex}"
        return path, self.call(method, path).json()["error"]["pending_id"]

    def vote(self, who: str, item_id: str, verdict: str, reason: str = "") -> httpx.Response:
        return self.running.gh.admin_call("POST", f"/v1/pending/{item_id}/{verdict}",
                                          self.reviewers[who], json={"reason": reason})

    def audit(self, event: str) -> list[dict[str, object]]:
        return self.running.audit(event)

    def wait_for_audit(self, event: str, seconds: float = 15,
                       **fields: object) -> dict[str, object]:
        return self.running.wait_for_audit(event, seconds, **fields)


def start(tmp: Path, upstream: Upstream, webhooks: list[str], expire_after: str = "1h",
          escalate_after: str | None = None) -> tuple[Running, dict[str, str]]:
    (tmp / "policy.yaml").write_text(POLICY.format(
        expire_after=expire_after,
        escalate_after=f"  escalate_after: {escalate_after}\n" if escalate_after else ""))
    flags = [arg for url in webhooks for arg in ("--webhook", url)]
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("ops-bot",),
                            extra=flags)
    return running, {name: running.gh.token("--reviewer", name, "--role", "reviewer")
                     for name in REVIEWERS}


@pytest.fixture(scope="module")
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def flaky() -> Iterator[WebhookReceiver]:
    with webhook_receiver(fail_first=True) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def refused() -> int:
    return free_port()  # nothing listens there


@pytest.fixture(scope="module")
def notified(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
             flaky: WebhookReceiver, refused: int, silent: int) -> Iterator[Notified]:
    """A gateway that escalates after 2 s and notifies a good receiver, a flaky one, an address
    that refuses connections and one that never answers."""
    with webhook_receiver() as receiver:
        running, reviewers = start(
            tmp_path_factory.mktemp("notified"), upstream, escalate_after="2s",
            webhooks=[receiver.url, flaky.url, f"http://127.0.0.1:{refused}/hooks/x",
                      f"http://127.0.0.1:{silent}/hooks/y"])
        yield Notified(running, reviewers, receiver)
        running.gh.stop()


def test_receivers_that_are_down_never_delay_the_agent_or_the_reviewer(
        notified: Notified, refused: int) -> None:
    path = f"/x/{uuid.uuid4().hex}"
    started = time.monotonic()
    held = notified.call("PUT", path)
    assert held.status_code == 503 and time.monotonic() - started < 1
    item_id = held.json()["error"]["pending_id"]
    started = time.monotonic()
    assert notified.vote("dave", item_id, "approve").status_code == 200
    assert time.monotonic() - started < 1
    started = time.monotonic()
    assert notified.call("PUT", path).status_code == 200
    assert time.monotonic() - started < 1
    failed = notified.wait_for_audit("notify.failed", seconds=30, pending_id=item_id,
                                     notification="new", url_host=f"127.0.0.1:{refused}")
    assert failed["attempts"] == 4 and "connect" in str(failed["error"]).lower()
    assert "/hooks/" not in str(failed)  # the path of a webhook URL is its secret


def test_a_new_item_is_announced_with_what_a_reviewer_needs(notified: Notified) -> None:
    path, item_id = notified.held()
    message = notified.receiver.wait_for(item_id, "new")
    assert "Approval needed" in str(message["text"]) and "github.put" in str(message["text"])
    assert [block["type"] for block in message["blocks"]] == ["section", "context"]  # type: ignore[attr-defined,index]
    facts = message["gatehouse"]
    assert isinstance(facts, dict)
    assert {k: facts[k] for k in ("event", "pending_id", "agent", "action", "tier", "route",
                                  "reason", "on_timeout", "state")} == {
        "event": "new", "pending_id": item_id, "agent": "ops-bot", "action": "github.put",
        "tier": 1, "route": "ops", "reason": "Writes are reviewed", "on_timeout": "deny",
        "state": "pending"}
    shown = notified.running.gh.admin_call("GET", str(facts["admin_path"]),
                                           notified.reviewers["dave"]).json()
    assert shown["id"] == item_id and shown["expires_at"] == facts["expires_at"]
    assert path in shown["request"]["url"]


def test_outcomes_are_announced(notified: Notified, upstream: Upstream) -> None:
    path, approved_id = notified.held()
    assert notified.vote("dave", approved_id, "approve").status_code == 200
    approved = notified.receiver.wait_for(approved_id, "approved")
    assert "Approved by dave" in str(approved["text"])
    assert notified.call("PUT", path).status_code == 200
    assert len(upstream.requests_to(path)) == 1
    notified.receiver.wait_for(approved_id, "consumed")

    _, denied_id = notified.held()
    assert notified.vote("dave", denied_id, "deny", reason="not today").status_code == 200
    denied = notified.receiver.wait_for(denied_id, "denied")
    assert denied["gatehouse"]["outcome_reason"] == "not today"  # type: ignore[index]
    assert "Denied: not today" in str(denied["text"])


def test_an_undecided_item_escalates_and_the_next_group_may_vote(notified: Notified) -> None:
    _, for_frank = notified.held()
    _, for_dave = notified.held()
    early = notified.vote("frank", for_frank, "approve")
    assert early.status_code == 403 and "not in `ops`" in early.json()["error"]["message"]
    escalated = notified.receiver.wait_for(for_frank, "escalated")
    facts = escalated["gatehouse"]
    assert isinstance(facts, dict)
    assert (facts["route"], facts["escalation_level"], facts["earlier_routes"]) == \
        ("managers", 1, ["ops"])
    assert "Escalated to `managers`" in str(escalated["text"])
    record = notified.wait_for_audit("approval.escalated", pending_id=for_frank)
    assert record["from_route"] == "ops" and record["trigger"] == "escalate_after"
    queue = notified.running.gh.admin_call("GET", "/v1/pending?route=managers",
                                           notified.reviewers["frank"]).json()["items"]
    assert for_frank in [i["id"] for i in queue]
    assert notified.vote("frank", for_frank, "approve").status_code == 200  # the new group
    notified.receiver.wait_for(for_dave, "escalated")
    assert notified.vote("dave", for_dave, "approve").status_code == 200  # the first group
    refused = notified.vote("mallory", notified.held()[1], "approve")
    assert refused.status_code == 403


def test_a_receiver_that_fails_is_retried(notified: Notified, flaky: WebhookReceiver) -> None:
    _, item_id = notified.held()
    flaky.wait_for(item_id, "new", count=2)  # refused with a 500, then sent again
    first, again = flaky.about(item_id, "new")
    assert first == again
    time.sleep(1)
    assert len(flaky.about(item_id, "new")) == 2  # accepted the second time: no third
    assert not [r for r in notified.audit("notify.failed")
                if r["url_host"] == f"127.0.0.1:{flaky.port}"]


# --- on_timeout at expiry ------------------------------------------------------------------

@pytest.fixture(scope="module")
def expiring(tmp_path_factory: pytest.TempPathFactory,
             upstream: Upstream) -> Iterator[Notified]:
    """A gateway whose held calls expire after 2 s: PUT (tier 1) is refused then, PATCH
    (tier 2) approved, DELETE (tier 3) escalated once and then refused."""
    with webhook_receiver() as receiver:
        running, reviewers = start(tmp_path_factory.mktemp("expiring"), upstream,
                                   webhooks=[receiver.url], expire_after="2s")
        yield Notified(running, reviewers, receiver)
        running.gh.stop()


def test_on_timeout_deny_expires(expiring: Notified, upstream: Upstream) -> None:
    path, item_id = expiring.held("PUT")
    notice = expiring.receiver.wait_for(item_id, "expiring")
    assert notice["gatehouse"]["on_timeout"] == "deny"  # type: ignore[index]
    expiring.receiver.wait_for(item_id, "expired")
    refused = expiring.call("PUT", path)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "approval_expired"
    assert upstream.requests_to(path) == []


def test_on_timeout_allow_approves_a_low_tier_at_expiry(expiring: Notified,
                                                        upstream: Upstream) -> None:
    path, item_id = expiring.held("PATCH")
    notice = expiring.receiver.wait_for(item_id, "expiring")
    assert "APPROVED without a reviewer" in str(notice["text"])
    approved = expiring.receiver.wait_for(item_id, "approved")
    assert f"Approved by {TIMEOUT_REVIEWER}" in str(approved["text"])
    record = expiring.wait_for_audit("approval.approved", pending_id=item_id)
    assert record["reviewer"] == TIMEOUT_REVIEWER and record["on_timeout"] == "allow"
    passed = expiring.call("PATCH", path)
    assert passed.status_code == 200 and passed.headers["X-Gatehouse-Decision"] == "approved"
    assert len(upstream.requests_to(path)) == 1
    decided = [r for r in expiring.audit("call.decided") if r.get("pending_id") == item_id]
    assert decided[-1]["approved_by"] == [TIMEOUT_REVIEWER]
    log = expiring.running.gh.log.read_text()
    assert f"APPROVED WITHOUT A REVIEWER: {item_id}" in log


def test_on_timeout_escalate_moves_up_the_chain_then_expires(expiring: Notified) -> None:
    path, item_id = expiring.held("DELETE")
    escalated = expiring.receiver.wait_for(item_id, "escalated")
    assert escalated["gatehouse"]["route"] == "managers"  # type: ignore[index]
    record = expiring.wait_for_audit("approval.escalated", pending_id=item_id)
    assert record["trigger"] == "on_timeout"
    still = expiring.call("DELETE", path)
    assert still.status_code == 503  # the new group has its own 2 s
    expired = expiring.receiver.wait_for(item_id, "expired")
    assert "after escalating to `managers`" in str(expired["text"])
    assert expiring.call("DELETE", path).status_code == 403
