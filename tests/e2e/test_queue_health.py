"""Queue health and playbook notifications through the real gateway: items assigned within
their group and listed per reviewer, a reviewer refused approvals after a burst, every approval
drawn for a second review (rate 1.0), the statistics and metrics that show it, and a
pre-approved call that passes at once while a local webhook receiver hears of it.

Each test uses its own route (group of reviewers), so their numbers do not mix.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream
from tests.e2e.webhooks import WebhookReceiver, webhook_receiver

POLICY = """\
version: 1
policy: queue-health-test
revision: "1"
default: deny
egress:
  allow: [api.github.com, api.stripe.com]
actions:
  - type: github.write
    match: { method: PUT, host: api.github.com }
  - type: github.delete
    match: { method: DELETE, host: api.github.com }
  - type: github.edit
    match: { method: PATCH, host: api.github.com }
  - type: payments.refund
    match: { method: POST, host: api.stripe.com, path: /v1/refunds }
    params: { amount: "form:amount" }
  - type: github.status
    match: { method: GET, host: api.github.com, path: /status }
    params: { token: "query:token" }
rules:
  - id: writes
    when: { action: github.write }
    decision: require_approval
    route: ops
  - id: deletes
    when: { action: github.delete }
    decision: require_approval
    route: sre
  - id: edits
    when: { action: github.edit }
    decision: require_approval
    route: oncall
  - id: refunds
    when: { action: payments.refund }
    decision: require_approval
    route: finance
  - id: status-playbook
    when: { action: github.status }
    decision: allow
    notify: true
    reason: Status checks are pre-approved; reviewers are told
approvals:
  hold_seconds: 0
  queue:
    target_median_wait: 1h
    target_p95_wait: 2h
    max_open_per_reviewer: 1
    cooldown_after_approvals: 2
    cooldown: 15m
    second_review_rate: 1.0
  groups:
    ops: [dave, erin, frank]
    finance: [alice, bob, carol]
    sre: [gina, hal]
    oncall: [ivan, judy]
"""
REVIEWERS = ("dave", "erin", "frank", "alice", "bob", "carol", "gina", "hal", "ivan", "judy")


@dataclass
class Queue:
    running: Running
    reviewers: dict[str, str]
    receiver: WebhookReceiver

    def agent(self) -> httpx.Client:
        trust = ssl.create_default_context(cafile=self.running.gh.ca_bundle)
        return httpx.Client(proxy=self.running.proxy("ops-bot"), verify=trust, timeout=30)

    def held(self, method: str, url: str, **kwargs: object) -> str:
        """A new held call's pending id."""
        with self.agent() as agent:
            response = agent.request(method, url, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 503, response.text
        return response.json()["error"]["pending_id"]

    def admin(self, method: str, path: str, who: str, **kwargs: object) -> httpx.Response:
        token = self.reviewers.get(who) or self.running.people[who]
        return self.running.gh.admin_call(method, path, token, **kwargs)

    def vote(self, who: str, item_id: str, verdict: str, reason: str = "") -> httpx.Response:
        return self.admin("POST", f"/v1/pending/{item_id}/{verdict}", who,
                          json={"reason": reason})


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Queue]:
    tmp = tmp_path_factory.mktemp("queue")
    (tmp / "policy.yaml").write_text(POLICY)
    with webhook_receiver() as receiver:
        running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("ops-bot",),
                                extra=["--webhook", receiver.url])
        reviewers = {name: running.gh.token("--reviewer", name, "--role", "reviewer")
                     for name in REVIEWERS}
        yield Queue(running, reviewers, receiver)
        running.gh.stop()


def github(path: str = "") -> str:
    return f"https://api.github.com/x/{uuid.uuid4().hex}{path}"


def test_items_are_assigned_round_robin_below_the_cap_and_listed_per_reviewer(
        queue: Queue) -> None:
    first, second, third, fourth = (queue.held("PUT", github()) for _ in range(4))
    shown = {i: queue.admin("GET", f"/v1/pending/{i}", "dave").json()["assigned_to"]
             for i in (first, second, third, fourth)}
    assert shown == {first: "dave", second: "erin", third: "frank", fourth: None}  # cap 1
    mine = queue.admin("GET", "/v1/pending?assigned_to=me", "erin").json()["items"]
    assert [i["id"] for i in mine] == [second]
    listed = queue.running.gh.cli("pending", "--mine", "--token", queue.reviewers["frank"])
    assert third in listed.stdout and second not in listed.stdout
    requested = queue.admin("GET", "/v1/audit?event=approval.requested&limit=1000",
                            "auditor").json()["items"]
    note = next(r["assignment"] for r in requested if r["pending_id"] == fourth)
    assert "every member of `ops` has 1 open item(s)" in note
    assert queue.vote("erin", fourth, "deny", "unassigned, still anyone's").status_code == 200
    assert queue.vote("dave", first, "deny", "frees dave's place").status_code == 200
    assert queue.admin("GET", f"/v1/pending/{queue.held('PUT', github())}", "dave"
                       ).json()["assigned_to"] == "dave"


def test_every_approval_drawn_for_a_second_review_needs_another_reviewer(
        queue: Queue, upstream: Upstream) -> None:
    marker = uuid.uuid4().hex
    url, form = f"https://api.stripe.com/v1/refunds?m={marker}", {"amount": "100"}
    item_id = queue.held("POST", url, data=form)
    first = queue.vote("alice", item_id, "approve")
    assert first.status_code == 200
    assert (first.json()["state"], first.json()["second_review"]) == ("pending", True)
    assert (first.json()["approvals"], first.json()["approvals_needed"]) == (1, 2)
    with queue.agent() as agent:
        still = agent.post(url, data=form)
    assert still.status_code == 503 and still.json()["error"]["pending_id"] == item_id
    assert queue.vote("alice", item_id, "approve").status_code == 409  # one vote each
    assert queue.vote("bob", item_id, "approve").json()["state"] == "approved"
    with queue.agent() as agent:
        assert agent.post(url, data=form).status_code == 200
    assert [r["query"] for r in upstream.requests_to("/v1/refunds")
            if marker in str(r["query"])] == [f"m={marker}"]  # once
    approved = queue.admin("GET", "/v1/audit?event=approval.approved&limit=1000",
                           "auditor").json()["items"]
    record = next(r for r in approved if r["pending_id"] == item_id)
    assert record["second_review"] is True and record["approved_by"] == ["alice", "bob"]
    queue.receiver.wait_for(item_id, "second_review")


def test_a_reviewer_is_refused_approvals_after_a_burst_and_may_still_deny(
        queue: Queue) -> None:
    refunds = [queue.held("POST", f"https://api.stripe.com/v1/refunds?m={uuid.uuid4().hex}",
                          data={"amount": "5"}) for _ in range(4)]
    for item_id in refunds[:2]:
        assert queue.vote("carol", item_id, "approve").status_code == 200
    refused = queue.vote("carol", refunds[2], "approve")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "cooldown" and f"refused until {error['until']}" in error["message"]
    assert queue.vote("carol", refunds[3], "deny", "looks wrong").status_code == 200
    assert queue.vote("alice", refunds[2], "approve").status_code == 200  # others may


def test_queue_stats_show_waits_against_targets_and_each_reviewers_load(
        queue: Queue) -> None:
    decided, waiting = queue.held("DELETE", github()), queue.held("DELETE", github())
    queue.admin("GET", f"/v1/pending/{decided}", "gina")  # starts gina's review clock
    assert queue.vote("gina", decided, "deny", "not today").status_code == 200
    assert queue.admin("GET", "/v1/queue/stats", "auditor").status_code == 403
    assert '"routes"' in queue.running.gh.cli("queue", "--token", queue.reviewers["gina"]).stdout
    stats = queue.admin("GET", "/v1/queue/stats", "responder").json()
    assert stats["settings"] == {
        "target_median_wait_seconds": 3600.0, "target_p95_wait_seconds": 7200.0,
        "max_open_per_reviewer": 1, "cooldown_after_approvals": 2, "cooldown_seconds": 900.0,
        "second_review_rate": 1.0}
    [sre] = [row for row in stats["routes"] if row["route"] == "sre"]
    assert (sre["tier"], sre["open"], sre["decided"], sre["outcomes"]) == \
        (1, 1, 1, {"denied": 1})
    assert 0 < sre["median_wait_seconds"] == sre["p95_wait_seconds"] < 60
    assert (sre["median_met"], sre["p95_met"]) == (True, True)
    assert 0 <= sre["oldest_open_seconds"] < 60
    people = {row["reviewer"]: row for row in stats["reviewers"]}
    assert (people["gina"]["open_assigned"], people["hal"]["open_assigned"]) == (0, 1)
    assert people["gina"]["votes"] == 1 and people["gina"]["median_review_seconds"] >= 0
    assert people["hal"]["median_review_seconds"] is None
    assert people["carol"]["approvals_last_hour"] == 2 and people["carol"]["cooling_until"]
    assert people["judy"]["cooling_until"] is None
    assert waiting in [i["id"] for i in queue.admin("GET", "/v1/pending?assigned_to=hal",
                                                    "gina").json()["items"]]


def test_metrics_carry_waits_open_items_and_review_times(queue: Queue) -> None:
    item_id = queue.held("PATCH", github())
    queue.admin("GET", f"/v1/pending/{item_id}", "ivan")
    assert queue.vote("ivan", item_id, "deny", "no").status_code == 200
    queue.held("PATCH", github())
    metrics = httpx.get(queue.running.gh.admin + "/metrics", trust_env=False).text
    assert 'gatehouse_approval_wait_seconds_count{route="oncall",tier="1"} 1.0' in metrics
    assert 'gatehouse_approvals_open{route="oncall"} 1.0' in metrics
    assert 'gatehouse_review_seconds_count{reviewer="ivan"} 1.0' in metrics


def test_a_playbook_call_passes_at_once_and_the_reviewers_hear_of_it(
        queue: Queue, upstream: Upstream) -> None:
    with queue.agent() as agent:
        passed = agent.get("https://api.github.com/status?token=s3cret-value")
    assert passed.status_code == 200 and passed.headers["X-Gatehouse-Decision"] == "allow"
    assert len(upstream.requests_to("/status")) >= 1
    message = allowed_message_for(queue.receiver, passed.headers["X-Gatehouse-Request-Id"])
    assert (message["agent"], message["action"], message["rule_ids"], message["verdict"]) == \
        ("ops-bot", "github.status", ["status-playbook"], "allow")
    assert "s3cret-value" not in str(queue.receiver.messages)  # never the params


def allowed_message_for(receiver: WebhookReceiver, request_id: str) -> dict[str, object]:
    """The `gatehouse` facts of the playbook message about one call, once it has arrived."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for message in list(receiver.messages):
            facts: dict[str, object] = message["gatehouse"]  # type: ignore[assignment]
            if facts["event"] == "allowed_notify" and facts["request_id"] == request_id:
                return facts
        time.sleep(0.05)
    raise AssertionError(f"no allowed_notify message for {request_id}")
