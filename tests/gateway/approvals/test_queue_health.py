"""Queue health on real stores and a real policy: items assigned round-robin below the cap
(and again on escalation), a reviewer cooling down after a burst of approvals, a drawn second
review (the draw injected), and the metrics each step feeds."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.approvals.model import HeldRequest, PendingItem, State
from gateway.approvals.review import VoteRefused
from gateway.approvals.service import ApprovalService
from gateway.services import Services, Settings, open_services
from gateway.tokens import Principal, Role

POLICY = """\
version: 1
policy: queue-test
revision: "1"
egress:
  allow: [api.github.com]
actions:
  - type: github.write
    match: { method: PUT, host: api.github.com }
rules:
  - id: github-writes
    when: { action: github.write }
    decision: require_approval
    route: ops
approvals:
  escalate_after: 20m
  escalation: [ops, managers]
  queue:
    max_open_per_reviewer: 2
    cooldown_after_approvals: 2
    cooldown: 15m
    second_review_rate: 0.25
  groups:
    ops: [dave, erin]
    managers: [frank, gina]
"""
REQUEST = HeldRequest(method="PUT", scheme="https", host="api.github.com", port=443, path="/x",
                      query=(), headers=(), body=b"")
_hashes = itertools.count()


class Draws:
    """An injected second-review draw: answers `drawn` and remembers the rates asked about."""

    def __init__(self, drawn: bool) -> None:
        self.drawn = drawn
        self.rates: list[float] = []

    def __call__(self, rate: float) -> bool:
        self.rates.append(rate)
        return self.drawn


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    opened = open_services(Settings(policy_path=tmp_path / "policy.yaml", state_dir=tmp_path))
    yield opened
    opened.close()


def service(services: Services, draws: Draws) -> ApprovalService:
    """The gateway's approval service with the draw under the test's control."""
    return ApprovalService(services.approvals.store, services.audit, services.policy,
                           services.halts, metrics=services.metrics, draw=draws)


async def hold(approvals: ApprovalService) -> PendingItem:
    return await approvals.hold(
        agent="ops-bot", tenant=None, action={"type": "github.write", "tags": [], "params": {}},
        decision={"rule_ids": ["github-writes"], "reason": "reviewed", "tier": 1,
                  "route": "ops", "snapshot_id": "1:aaaaaaaaaaaa"},
        request_hash=f"{next(_hashes):064x}", request=REQUEST)


def reviewer(name: str) -> Principal:
    return Principal(kind="person", name=name, role=Role.REVIEWER)


def sample(services: Services, name: str, **labels: str) -> float | None:
    return services.metrics.registry.get_sample_value(name, labels)


def test_new_items_go_round_robin_to_the_least_loaded_below_the_cap(services: Services) -> None:
    async def scenario() -> list[PendingItem]:
        return [await hold(services.approvals) for _ in range(5)]

    held = asyncio.run(scenario())
    assert [i.assigned_to for i in held] == ["dave", "erin", "dave", "erin", None]
    mine = services.approvals.store.list(assigned_to="erin")
    assert [i.id for i in mine] == [held[1].id, held[3].id]
    requested = services.audit.query(event="approval.requested")
    assert [r["assigned_to"] for r in requested] == ["dave", "erin", "dave", "erin", None]
    assert "every member of `ops` has 2 open item(s)" in str(requested[-1]["assignment"])


def test_a_decided_item_frees_its_reviewers_place(services: Services) -> None:
    approvals = service(services, Draws(drawn=False))

    async def scenario() -> PendingItem:
        first = [await hold(approvals) for _ in range(4)]
        await approvals.vote(first[0].id, reviewer("erin"), "deny", "not now", None)
        return await hold(approvals)

    assert asyncio.run(scenario()).assigned_to == "dave"


def test_an_unassigned_item_may_still_be_approved_by_any_member(services: Services) -> None:
    approvals = service(services, Draws(drawn=False))

    async def scenario() -> PendingItem:
        held = [await hold(approvals) for _ in range(5)]
        return await approvals.vote(held[-1].id, reviewer("dave"), "approve", "", None)

    assert asyncio.run(scenario()).state is State.APPROVED


def test_escalation_reassigns_within_the_new_group(services: Services) -> None:
    async def scenario() -> PendingItem | None:
        item = await hold(services.approvals)
        assert item.assigned_to == "dave"
        await services.approvals.escalate_due(datetime.fromisoformat(item.created_at)
                                              + timedelta(minutes=21))
        return services.approvals.store.get(item.id)

    moved = asyncio.run(scenario())
    assert moved is not None and (moved.route, moved.assigned_to) == ("managers", "frank")
    [record] = services.audit.query(event="approval.escalated")
    assert record["assigned_to"] == "frank"


def test_a_reviewer_cools_down_after_a_burst_of_approvals_but_may_still_deny(
        services: Services) -> None:
    approvals = service(services, Draws(drawn=False))

    async def scenario() -> tuple[VoteRefused, PendingItem]:
        held = [await hold(approvals) for _ in range(4)]
        for item in held[:2]:
            await approvals.vote(item.id, reviewer("dave"), "approve", "", None)
        with pytest.raises(VoteRefused) as refused:
            await approvals.vote(held[2].id, reviewer("dave"), "approve", "", None)
        denied = await approvals.vote(held[3].id, reviewer("dave"), "deny", "no", None)
        return refused.value, denied

    refused, denied = asyncio.run(scenario())
    assert (refused.status, refused.error_type) == (429, "cooldown")
    until = refused.fields["until"]
    assert f"refused until {until}" in str(refused) and "denials still count" in str(refused)
    assert approvals.cooling_until("dave") is not None and approvals.cooling_until("erin") is None
    assert denied.state is State.DENIED


def test_a_drawn_approval_needs_a_second_distinct_reviewer(services: Services) -> None:
    draws = Draws(drawn=True)
    approvals = service(services, draws)

    async def scenario() -> tuple[PendingItem, PendingItem]:
        item = await hold(approvals)
        first = await approvals.vote(item.id, reviewer("dave"), "approve", "", None)
        with pytest.raises(VoteRefused):  # one vote per reviewer, second review or not
            await approvals.vote(item.id, reviewer("dave"), "approve", "", None)
        second = await approvals.vote(item.id, reviewer("erin"), "approve", "", None)
        return first, second

    first, second = asyncio.run(scenario())
    assert (first.state, first.second_review, first.approvals_needed) == (State.PENDING, True, 2)
    assert (second.state, second.approvals) == (State.APPROVED, 2)
    assert draws.rates == [0.25]  # drawn once, at the approval that would have released it
    [drawn] = services.audit.query(event="approval.second_review")
    assert drawn["reviewer"] == "dave" and drawn["approvals_needed"] == 2
    [approved] = services.audit.query(event="approval.approved")
    assert approved["second_review"] is True and approved["approved_by"] == ["dave", "erin"]


def test_an_approval_not_drawn_releases_the_call(services: Services) -> None:
    approvals = service(services, Draws(drawn=False))

    async def scenario() -> PendingItem:
        item = await hold(approvals)
        return await approvals.vote(item.id, reviewer("dave"), "approve", "", None)

    approved = asyncio.run(scenario())
    assert approved.state is State.APPROVED and not approved.second_review


def test_waits_review_times_and_open_items_reach_the_metrics(services: Services) -> None:
    approvals = service(services, Draws(drawn=False))

    async def scenario() -> None:
        item = await hold(approvals)
        await hold(approvals)
        approvals.open(item.id, "erin")
        await approvals.vote(item.id, reviewer("erin"), "approve", "", None)

    asyncio.run(scenario())
    wait = "gatehouse_approval_wait_seconds_count"
    assert sample(services, wait, route="ops", tier="1") == 1
    assert sample(services, "gatehouse_review_seconds_count", reviewer="erin") == 1
    services.metrics.set_open(services.approvals.store.open_by_route(),
                              services.policy.current.model.approvals.groups)
    assert sample(services, "gatehouse_approvals_open", route="ops") == 1
    assert sample(services, "gatehouse_approvals_open", route="managers") == 0


def test_reviewers_outside_the_policy_groups_share_one_label(services: Services) -> None:
    services.metrics.observe_review("root", {"ops": ["dave"]}, 3.0)
    assert sample(services, "gatehouse_review_seconds_count", reviewer="other") == 1
