"""Graduated autonomy through the real gateway: a level holds writes, a person promotes once
the criteria hold, and a policy violation demotes at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Running, serving
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: autonomy
revision: "1"
egress: {allow: [docs.acme.example, api.sendgrid.com, api.stripe.com, unlisted.example]}
actions:
  - {type: docs.read, match: {method: GET, host: [docs.acme.example, unlisted.example]}}
  - {type: email.send, match: {method: POST, host: api.sendgrid.com}, tags: [write]}
  - {type: payments.refund, match: {method: POST, host: api.stripe.com}, tags: [write]}
rules:
  - {id: reads, when: {action: docs.read}, decision: allow}
  - {id: mail, when: {action: email.send}, decision: allow}
  - {id: no-refunds, when: {action: payments.refund}, decision: deny}
approvals: {hold_seconds: 0}
autonomy:
  default_level: 1
  levels: {0: {approval_actions: ["*"]}, 1: {approval_tags: [write]}, 2: {}}
  promotion: {successful_actions: 2, max_error_rate: 0.5, review_period: 0}
  demote_above_error_rate: 0.4
  min_calls: 2
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "autonomy", POLICY,
                 agents=("support-bot", "ops-bot", "flaky-bot"),  # nothing listens on port 9:
                 extra=["--connect-to", "unlisted.example:80=127.0.0.1:9"]) as running:
        yield running


def agent_view(gw: Running, agent: str = "support-bot") -> dict[str, object]:
    return gw.gh.admin_call("GET", f"/v1/agents/{agent}", gw.people["reviewer"]).json()


def change(gw: Running, how: str, reason: str = "reviewed its record") -> object:
    return gw.gh.admin_call("POST", f"/v1/agents/support-bot/{how}", gw.people["responder"],
                            json={"reason": reason})


def test_a_level_holds_writes_until_a_person_promotes_the_agent(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        assert bot.get("https://docs.acme.example/1").status_code == 200
        held = bot.post("https://api.sendgrid.com/v3/mail/send", json={"to": "a@b.example"})
        assert held.status_code == 503 and held.json()["error"]["type"] == "approval_pending"
        record = gw.wait_for_audit("call.decided",
                                   request_id=held.headers["X-Gatehouse-Request-Id"])
        assert record["rule_ids"] == ["autonomy-level-1"]

        view = agent_view(gw)
        assert (view["level"], view["criteria"]["met"]) == (1, False)
        refused = change(gw, "promote")
        assert refused.status_code == 409 and "criteria" in refused.json()["error"]["message"]

        assert bot.get("https://docs.acme.example/2").status_code == 200
        assert agent_view(gw)["criteria"]["met"] is True
        promoted = change(gw, "promote")
        assert promoted.status_code == 200 and promoted.json()["level"] == 2
        assert bot.post("https://api.sendgrid.com/v3/mail/send",
                        json={"to": "a@b.example"}).status_code == 200


def test_a_policy_violation_demotes_the_agent_at_once(gw: Running) -> None:
    start = agent_view(gw)["level"]
    with gw.client("support-bot") as bot:
        assert bot.post("https://api.stripe.com/v1/refunds", json={"a": 1}).status_code == 403
    deadline = time.monotonic() + 10
    while (view := agent_view(gw))["level"] == start:
        assert time.monotonic() < deadline, "the agent was not demoted"
        time.sleep(0.05)
    assert view["level"] == start - 1
    last = view["history"][-1]
    assert (last["kind"], last["actor"]) == ("demoted", "gatehouse")
    assert "policy violation" in last["reason"]
    assert gw.gh.admin_call("POST", "/v1/agents/support-bot/promote", gw.people["reviewer"],
                            json={"reason": "x"}).status_code == 403


def test_a_halted_agent_resumes_at_the_level_a_responder_chooses(gw: Running) -> None:
    halt = gw.gh.admin_call("POST", "/v1/halts", gw.people["responder"], json={
        "scope": "agent", "target": "ops-bot", "reason": "drill"}).json()
    resumed = gw.gh.admin_call("DELETE", f"/v1/halts/{halt['id']}?as=level&level=0",
                               gw.people["responder"])
    assert resumed.status_code == 200 and resumed.json()["level"] == 0
    assert agent_view(gw, "ops-bot")["level"] == 0
    with gw.client("ops-bot") as bot:  # level 0: everything needs a reviewer
        held = bot.get("https://docs.acme.example/after-resume")
    assert held.status_code == 503 and held.json()["error"]["type"] == "approval_pending"

    again = gw.gh.admin_call("POST", "/v1/halts", gw.people["responder"], json={
        "scope": "agent", "target": "ops-bot", "reason": "drill"}).json()
    env = {"GATEHOUSE_TOKEN": gw.people["responder"]}
    gw.gh.cli("resume", str(again["id"]), "--as", "level", "2", env=env)
    assert agent_view(gw, "ops-bot")["level"] == 2
    wrong = gw.gh.admin_call("DELETE", f"/v1/halts/{again['id']}?as=level&level=7",
                             gw.people["responder"])
    assert wrong.status_code == 409


def test_an_error_rate_above_the_threshold_demotes(gw: Running) -> None:
    start = agent_view(gw, "flaky-bot")["level"]
    with gw.client("flaky-bot") as bot:  # the upstream of unlisted.example refuses to connect
        assert [bot.get(f"http://unlisted.example/{n}").status_code for n in (1, 2)] == [
            502, 502]
    deadline = time.monotonic() + 10
    while (view := agent_view(gw, "flaky-bot"))["level"] == start:
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
    assert "error rate" in view["history"][-1]["reason"]
