"""Exception escalation through the real gateway: the same call again and again is held, an
agent that says it is unsure is refused, and the audit record keeps the signals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Running, serving
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: escalation
revision: "1"
egress: {allow: [docs.acme.example]}
actions: [{type: docs.read, match: {host: docs.acme.example}}]
rules:
  - {id: reads, when: {action: docs.read}, decision: allow}
  - {id: third-time, when: {action: docs.read, retries: {gte: 2}}, decision: require_approval,
     reason: the agent keeps asking for the same page}
  - {id: unsure, when: {confidence: {lt: 0.5}}, decision: deny,
     reason: the agent says it is unsure}
approvals: {hold_seconds: 0}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "escalation", POLICY,
                 agents=("support-bot",)) as running:
        yield running


def test_the_third_identical_call_is_held_for_a_reviewer(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        answers = [bot.get("https://docs.acme.example/same") for _ in range(3)]
        other = bot.get("https://docs.acme.example/different")
    assert [a.status_code for a in answers] == [200, 200, 503]
    assert answers[2].json()["error"]["type"] == "approval_pending"
    assert other.status_code == 200
    held = gw.wait_for_audit("call.decided",
                             request_id=answers[2].headers["X-Gatehouse-Request-Id"])
    assert held["rule_ids"] == ["third-time"]
    assert held["signals"]["retries"] == 2 and held["signals"]["confidence"] is None


def test_an_agent_that_says_it_is_unsure_is_refused(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        unsure = bot.get("https://docs.acme.example/u", headers={"X-Agent-Confidence": "0.2"})
        sure = bot.get("https://docs.acme.example/s", headers={"X-Agent-Confidence": "0.9"})
    assert unsure.status_code == 403 and unsure.json()["error"]["rule"] == "unsure"
    assert sure.status_code == 200
    record = gw.wait_for_audit("call.decided",
                               request_id=unsure.headers["X-Gatehouse-Request-Id"])
    assert record["signals"]["confidence"] == 0.2
