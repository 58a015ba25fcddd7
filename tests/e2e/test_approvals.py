"""Approvals through the real gateway: the call a reviewer saw, and only that, goes out once.

Real clients wait on the proxy while reviewers vote through the admin API (and the CLI); the
upstream counts what actually arrives.
"""

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

POLICY = """\
version: 1
policy: approvals-test
revision: "{revision}"
default: deny
egress:
  allow: [api.github.com, api.stripe.com]
actions:
  - type: github.write
    match: {{ method: [POST, PUT, PATCH, DELETE], host: api.github.com }}
    tags: [write]
  - type: payments.refund
    match: {{ method: POST, host: api.stripe.com, path: /v1/refunds }}
    params: {{ amount_cents: "form:amount" }}
  - type: http.read
    match: {{ method: [GET] }}
rules:
  - id: reads
    when: {{ action: http.read }}
    decision: allow
  - id: github-writes
    when: {{ action: github.write }}
{github_rule}
    reason: GitHub writes are reviewed
  - id: refunds
    when: {{ action: payments.refund }}
    decision: require_approval
    tier: 3
    route: finance
    reason: Refunds need two finance reviewers
    rollback: Refunds cannot be reversed
approvals:
  hold_seconds: 3
  expire_after: {expire_after}
  tiers:
    1: {{ approvals: 1 }}
    3: {{ approvals: 2, min_review_seconds: 1, reason_required: true, confirm_phrase: true }}
  groups:
    ops: [dave, erin]
    finance: [alice, bob]
agents:
  ops-bot: {{ tenant: acme }}
  dave: {{ tenant: acme }}
"""
REVIEWERS = ("dave", "erin", "alice", "bob", "mallory")


def policy_text(revision: str = "1", github_decision: str = "require_approval",
                expire_after: str = "1h", github_tier: int = 1) -> str:
    rule = "    decision: deny" if github_decision == "deny" else \
        f"    decision: require_approval\n    tier: {github_tier}\n    route: ops"
    return POLICY.format(revision=revision, github_rule=rule, expire_after=expire_after)


def start(tmp: Path, upstream: Upstream, **policy: str) -> tuple[Running, dict[str, str]]:
    (tmp / "policy.yaml").write_text(policy_text(**policy))
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("ops-bot", "dave"))
    reviewers = {name: running.gh.token("--reviewer", name, "--role", "reviewer")
                 for name in REVIEWERS}
    return running, reviewers


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory,
         upstream: Upstream) -> Iterator[tuple[Running, dict[str, str]]]:
    running, reviewers = start(tmp_path_factory.mktemp("approvals"), upstream)
    yield running, reviewers
    running.gh.stop()


def client(running: Running, agent: str = "ops-bot") -> httpx.Client:
    trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
    return httpx.Client(proxy=running.proxy(agent), verify=trust, timeout=30)


def items(running: Running, token: str, **filters: str) -> list[dict[str, object]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return running.gh.admin_call("GET", f"/v1/pending?{query}", token).json()["items"]


def wait_for_item(running: Running, token: str, marker: str) -> dict[str, object]:
    """The pending item whose stored request carries `marker` (a unique path segment)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for item in items(running, token):
            full = running.gh.admin_call("GET", f"/v1/pending/{item['id']}", token).json()
            if marker in str(full["request"]["url"]):
                return full
        time.sleep(0.05)
    raise AssertionError(f"no pending item for {marker}")


def vote(running: Running, token: str, item_id: object, verdict: str,
         **body: str) -> httpx.Response:
    return running.gh.admin_call("POST", f"/v1/pending/{item_id}/{verdict}", token, json=body)


def test_a_held_call_goes_out_once_approved_while_the_agent_waits(
        held: tuple[Running, dict[str, str]], upstream: Upstream) -> None:
    running, reviewers = held
    marker = uuid.uuid4().hex
    with concurrent.futures.ThreadPoolExecutor() as pool, client(running) as agent:
        waiting = pool.submit(agent.post, f"https://api.github.com/repos/{marker}/issues",
                              json={"title": "bug"})
        item = wait_for_item(running, reviewers["dave"], marker)
        assert upstream.requests_to(f"/repos/{marker}/issues") == []  # held, not sent
        assert vote(running, reviewers["dave"], item["id"], "approve").status_code == 200
        response = waiting.result(timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Gatehouse-Decision"] == "approved"
    [sent] = upstream.requests_to(f"/repos/{marker}/issues")
    assert sent["body"] == '{"title":"bug"}'
    audit = running.gh.admin_call("GET", "/v1/audit?event=call.decided&decision=approved",
                                  running.people["auditor"]).json()["items"]
    assert any(r["pending_id"] == item["id"] and r["approved_by"] == ["dave"] for r in audit)


def test_a_retry_after_approval_passes_exactly_once(held: tuple[Running, dict[str, str]],
                                                    upstream: Upstream) -> None:
    running, reviewers = held
    marker = uuid.uuid4().hex
    url = f"https://api.github.com/repos/{marker}/labels"
    with client(running) as agent:
        first = agent.post(url, json={"name": "p1"})  # held for hold_seconds, then 503
        assert first.status_code == 503
        error = first.json()["error"]
        assert error["type"] == "approval_pending" and error["pending_id"].startswith("p_")
        assert int(first.headers["Retry-After"]) >= 1
        again = agent.post(url, json={"name": "p1"})  # byte-identical: the same item
        assert again.json()["error"]["pending_id"] == error["pending_id"]  # no duplicate
        assert vote(running, reviewers["erin"], error["pending_id"], "approve").status_code == 200
        passed = agent.post(url, json={"name": "p1"})
        assert passed.status_code == 200
        assert len(upstream.requests_to(f"/repos/{marker}/labels")) == 1
        held_again = agent.post(url, json={"name": "p1"})  # the approval was used up
        assert held_again.status_code == 503
        assert held_again.json()["error"]["pending_id"] != error["pending_id"]
    assert len(upstream.requests_to(f"/repos/{marker}/labels")) == 1


def test_a_changed_retry_needs_its_own_approval(held: tuple[Running, dict[str, str]]) -> None:
    running, _ = held
    marker = uuid.uuid4().hex
    url = f"https://api.github.com/repos/{marker}/labels"
    with client(running) as agent:
        one = agent.post(url, json={"name": "a"}).json()["error"]["pending_id"]
        other_body = agent.post(url, json={"name": "b"}).json()["error"]["pending_id"]
        other_header = agent.post(url, json={"name": "a"}, headers={"X-Tenant": "2"}
                                  ).json()["error"]["pending_id"]
    assert len({one, other_body, other_header}) == 3


def test_tier_3_needs_two_reviewers_time_a_reason_and_the_phrase(
        held: tuple[Running, dict[str, str]], upstream: Upstream) -> None:
    running, reviewers = held
    marker = uuid.uuid4().hex
    with client(running) as agent:
        error = agent.post(f"https://api.stripe.com/v1/refunds?m={marker}",
                           data={"amount": "50000"}).json()["error"]
    item_id = error["pending_id"]
    alice, bob = reviewers["alice"], reviewers["bob"]
    early = vote(running, alice, item_id, "approve", reason="ok")
    assert early.status_code == 422 and "open the item first" in early.json()["error"]["message"]
    item = running.gh.admin_call("GET", f"/v1/pending/{item_id}", alice).json()
    phrase = item["confirm_phrase"]
    assert item["rollback"] == "Refunds cannot be reversed" and item["tier"] == 3
    too_soon = vote(running, alice, item_id, "approve", reason="ok", confirm=phrase)
    assert too_soon.status_code == 422 and "s of review" in too_soon.json()["error"]["message"]
    time.sleep(1.1)
    assert vote(running, alice, item_id, "approve", reason="ok",
                confirm="wrong").status_code == 422
    assert vote(running, alice, item_id, "approve", confirm=phrase).status_code == 422  # reason
    first = vote(running, alice, item_id, "approve", reason="customer verified", confirm=phrase)
    assert first.status_code == 200 and first.json()["state"] == "pending"
    again = vote(running, alice, item_id, "approve", reason="again", confirm=phrase)
    assert again.status_code == 409  # one vote per reviewer
    running.gh.admin_call("GET", f"/v1/pending/{item_id}", bob)
    time.sleep(1.1)
    second = vote(running, bob, item_id, "approve", reason="agreed", confirm=phrase)
    assert second.status_code == 200 and second.json()["state"] == "approved"
    with client(running) as agent:
        passed = agent.post(f"https://api.stripe.com/v1/refunds?m={marker}",
                            data={"amount": "50000"})
    assert passed.status_code == 200


def test_a_denial_is_final_and_the_agent_hears_why(held: tuple[Running, dict[str, str]],
                                                   upstream: Upstream) -> None:
    running, reviewers = held
    marker = uuid.uuid4().hex
    url = f"https://api.github.com/repos/{marker}"
    with client(running) as agent:
        item_id = agent.delete(url).json()["error"]["pending_id"]
        no_reason = vote(running, reviewers["dave"], item_id, "deny")
        assert no_reason.status_code == 422
        assert vote(running, reviewers["dave"], item_id, "deny",
                    reason="not during the freeze").status_code == 200
        assert vote(running, reviewers["erin"], item_id, "approve").status_code == 409
        refused = agent.delete(url)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["type"] == "approval_denied" and "not during the freeze" in error["reason"]
    assert upstream.requests_to(f"/repos/{marker}") == []


@pytest.mark.parametrize(("who", "status", "words"), [
    ("mallory", 403, "not in `ops`"),  # a reviewer outside the routed group
    ("auditor", 403, "may not"),  # a role that does not review
    ("agent", 403, "agent credentials"),  # an agent's own token
])
def test_who_may_not_approve(held: tuple[Running, dict[str, str]], who: str, status: int,
                             words: str) -> None:
    running, reviewers = held
    token = {"mallory": reviewers["mallory"], "auditor": running.people["auditor"],
             "agent": running.agents["ops-bot"]}[who]
    with client(running) as agent:
        item_id = agent.put(f"https://api.github.com/x/{uuid.uuid4().hex}"
                            ).json()["error"]["pending_id"]
    response = vote(running, token, item_id, "approve")
    assert response.status_code == status and words in response.json()["error"]["message"]


def test_no_one_approves_a_call_made_under_their_own_identity(
        held: tuple[Running, dict[str, str]]) -> None:
    running, reviewers = held
    with client(running, agent="dave") as agent:
        item_id = agent.put(f"https://api.github.com/x/{uuid.uuid4().hex}"
                            ).json()["error"]["pending_id"]
    response = vote(running, reviewers["dave"], item_id, "approve")
    assert response.status_code == 403 and "own identity" in response.json()["error"]["message"]


def test_racing_approve_and_deny_have_one_outcome(held: tuple[Running, dict[str, str]]) -> None:
    running, reviewers = held
    for _ in range(5):
        with client(running) as agent:
            item_id = agent.put(f"https://api.github.com/x/{uuid.uuid4().hex}"
                                ).json()["error"]["pending_id"]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            approving = pool.submit(vote, running, reviewers["dave"], item_id, "approve")
            denying = pool.submit(vote, running, reviewers["erin"], item_id, "deny",
                                  reason="no")
            statuses = sorted([approving.result().status_code, denying.result().status_code])
        assert statuses == [200, 409]
        final = running.gh.admin_call("GET", f"/v1/pending/{item_id}", reviewers["dave"]).json()
        assert final["state"] in ("approved", "denied") and len(final["votes"]) == 1


def test_a_halt_freezes_approvals_and_answers_held_calls(
        held: tuple[Running, dict[str, str]]) -> None:
    running, reviewers = held
    marker = uuid.uuid4().hex
    with concurrent.futures.ThreadPoolExecutor() as pool, client(running) as agent:
        waiting = pool.submit(agent.post, f"https://api.github.com/repos/{marker}/x")
        item = wait_for_item(running, reviewers["dave"], marker)
        created = running.gh.admin_call("POST", "/v1/halts", running.people["responder"],
                                        json={"scope": "agent", "target": "ops-bot",
                                              "reason": "incident"}).json()
        answered = waiting.result(timeout=5)
        assert answered.status_code == 403 and answered.json()["error"]["type"] == "halted"
        frozen = vote(running, reviewers["dave"], item["id"], "approve")
        assert frozen.status_code == 409 and frozen.json()["error"]["type"] == "halted"
        running.gh.admin_call("DELETE", f"/v1/halts/{created['id']}", running.people["responder"])
        assert vote(running, reviewers["dave"], item["id"], "approve").status_code == 200


def test_the_cli_lists_shows_and_approves(held: tuple[Running, dict[str, str]]) -> None:
    running, reviewers = held
    with client(running) as agent:
        item_id = agent.patch(f"https://api.github.com/x/{uuid.uuid4().hex}"
                              ).json()["error"]["pending_id"]
    listed = running.gh.cli("pending", "--token", reviewers["erin"]).stdout
    assert item_id in listed
    shown = running.gh.cli("show", item_id, "--token", reviewers["erin"]).stdout
    assert '"reason": "GitHub writes are reviewed"' in shown
    approved = running.gh.cli("approve", item_id, "--reason", "fine", "--token",
                              reviewers["erin"]).stdout
    assert '"state": "approved"' in approved


def test_expiry_refuses_never_approves(tmp_path: Path, upstream: Upstream) -> None:
    running, _ = start(tmp_path, upstream, expire_after="2s")
    try:
        with client(running) as agent:
            url = f"https://api.github.com/x/{uuid.uuid4().hex}"
            item_id = agent.put(url).json()["error"]["pending_id"]
            time.sleep(2.5)
            expired = agent.put(url)
        error = expired.json()["error"]
        assert expired.status_code == 403 and error["type"] == "approval_expired"
        assert error["pending_id"] == item_id
    finally:
        running.gh.stop()


def test_approval_rechecks_the_running_policy(tmp_path: Path, upstream: Upstream) -> None:
    running, reviewers = start(tmp_path, upstream)
    try:
        with client(running) as agent:
            item_id = agent.put(f"https://api.github.com/x/{uuid.uuid4().hex}"
                                ).json()["error"]["pending_id"]
        (tmp_path / "policy.yaml").write_text(policy_text(revision="2", github_decision="deny"))
        reloaded = running.gh.admin_call("POST", "/v1/policy/reload", running.people["admin"])
        assert reloaded.status_code == 200, reloaded.text
        refused = vote(running, reviewers["dave"], item_id, "approve")
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["type"] == "policy_denies" and "`2:" in error["message"]
        item = running.gh.admin_call("GET", f"/v1/pending/{item_id}", reviewers["dave"]).json()
        assert item["state"] == "denied"
        records = running.gh.admin_call("GET", "/v1/audit?event=approval.denied",
                                        running.people["auditor"]).json()["items"]
        assert records[-1]["snapshot_id"].startswith("1:")
        assert records[-1]["decided_snapshot_id"].startswith("2:")
    finally:
        running.gh.stop()


def test_a_stricter_policy_is_not_satisfied_by_an_older_laxer_item(
        tmp_path: Path, upstream: Upstream) -> None:
    running, reviewers = start(tmp_path, upstream)
    url = f"https://api.github.com/x/{uuid.uuid4().hex}"
    try:
        with client(running) as agent:
            old = agent.put(url).json()["error"]["pending_id"]
        (tmp_path / "policy.yaml").write_text(policy_text(revision="2", github_tier=3))
        assert running.gh.admin_call("POST", "/v1/policy/reload",
                                     running.people["admin"]).status_code == 200
        refused = vote(running, reviewers["dave"], old, "approve")
        assert refused.status_code == 409
        assert refused.json()["error"]["type"] == "policy_stricter"
        with client(running) as agent:
            new = agent.put(url).json()["error"]["pending_id"]
        assert new != old
        item = running.gh.admin_call("GET", f"/v1/pending/{new}", reviewers["dave"]).json()
        assert item["tier"] == 3 and item["approvals_needed"] == 2
    finally:
        running.gh.stop()


def test_held_items_survive_a_crash(tmp_path: Path, upstream: Upstream) -> None:
    running, reviewers = start(tmp_path, upstream)
    url = f"https://api.github.com/x/{uuid.uuid4().hex}"
    try:
        with client(running) as agent:
            item_id = agent.put(url).json()["error"]["pending_id"]
        running.gh.kill()  # kill -9
        running.gh.start()
        assert [i["id"] for i in items(running, reviewers["dave"])] == [item_id]
        assert vote(running, reviewers["dave"], item_id, "approve").status_code == 200
        with client(running) as agent:
            assert agent.put(url).status_code == 200
    finally:
        running.gh.stop()


def test_an_agent_that_hangs_up_keeps_its_approval_for_the_retry(
        held: tuple[Running, dict[str, str]], upstream: Upstream) -> None:
    """Agents with a client timeout shorter than hold_seconds give up and retry: the
    approval given meanwhile must not be used up by the abandoned connection."""
    running, reviewers = held
    marker = uuid.uuid4().hex
    url = f"https://api.github.com/repos/{marker}/hooks"
    trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
    with httpx.Client(proxy=running.proxy("ops-bot"), verify=trust, timeout=1) as impatient, \
            pytest.raises(httpx.ReadTimeout):
        impatient.post(url, json={"url": "x"})
    item = wait_for_item(running, reviewers["dave"], marker)
    assert vote(running, reviewers["dave"], item["id"], "approve").status_code == 200
    time.sleep(0.3)
    state = running.gh.admin_call("GET", f"/v1/pending/{item['id']}", reviewers["dave"]).json()
    assert state["state"] == "approved"  # not used up by the connection that was gone
    assert upstream.requests_to(f"/repos/{marker}/hooks") == []
    with client(running) as agent:
        retried = agent.post(url, json={"url": "x"})
    assert retried.status_code == 200
    assert len(upstream.requests_to(f"/repos/{marker}/hooks")) == 1
