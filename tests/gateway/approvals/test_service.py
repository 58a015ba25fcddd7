"""The approval service's sweep on real stores and a real policy, with the clock passed in:
escalation after `escalate_after`, and each `on_timeout` at expiry, audited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.approvals.model import HeldRequest, PendingItem, State
from gateway.approvals.service import TIMEOUT_REVIEWER
from gateway.clock import iso, utc_now
from gateway.services import Services, Settings, open_services
from gateway.tokens import Principal, Role

POLICY = """\
version: 1
policy: sweep-test
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
    tier: TIER
    route: ops
approvals:
  expire_after: 1h
  escalate_after: 20m
  escalation: [ops, managers]
  tiers:
    1: { approvals: 1 }
    2: { approvals: 1, on_timeout: escalate }
    3: { approvals: 1, on_timeout: allow }
  groups:
    ops: [dave]
    managers: [frank]
"""
REQUEST = HeldRequest(method="PUT", scheme="https", host="api.github.com", port=443, path="/x",
                      query=(), headers=(), body=b"")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    opened = open_services(Settings(policy_path=write_policy(tmp_path, 1), state_dir=tmp_path))
    yield opened
    opened.close()


def write_policy(tmp_path: Path, tier: int) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("TIER", str(tier)))
    return path


async def hold(services: Services, tier: int = 1) -> PendingItem:
    return await services.approvals.hold(
        agent="ops-bot", tenant=None, action={"type": "github.write", "tags": [], "params": {}},
        decision={"rule_ids": ["github-writes"], "reason": "reviewed", "tier": tier,
                  "route": "ops", "snapshot_id": services.policy.current.snapshot_id},
        request_hash=f"{tier:064x}", request=REQUEST)


def later(item: PendingItem, **delta: float) -> datetime:
    return datetime.fromisoformat(item.created_at) + timedelta(**delta)


def records(services: Services, event: str) -> list[dict[str, object]]:
    return services.audit.query(event=event)


def reviewer(name: str) -> Principal:
    return Principal(kind="person", name=name, role=Role.REVIEWER)


def test_an_undecided_item_escalates_and_both_groups_may_then_vote(services: Services) -> None:
    async def scenario() -> tuple[PendingItem, PendingItem | None, PendingItem]:
        item = await hold(services)
        await services.approvals.escalate_due(later(item, minutes=19))
        unmoved = services.approvals.store.get(item.id)
        await services.approvals.escalate_due(later(item, minutes=20))
        moved = services.approvals.store.get(item.id)
        assert unmoved is not None and moved is not None
        assert unmoved.route == "ops" and unmoved.escalate_at == iso(later(item, minutes=20))
        await services.approvals.escalate_due(later(item, hours=5))  # nowhere left to go
        voted = await services.approvals.vote(item.id, reviewer("dave"), "approve", "", None)
        return moved, services.approvals.store.get(item.id), voted

    moved, final, voted = asyncio.run(scenario())
    assert (moved.route, moved.earlier_routes, moved.escalation_level) == ("managers", ("ops",), 1)
    assert moved.escalate_at is None and final is not None and final.escalation_level == 1
    assert voted.state is State.APPROVED  # dave's group had it first: he may still decide
    [escalated] = records(services, "approval.escalated")
    assert escalated["from_route"] == "ops" and escalated["route"] == "managers"
    assert escalated["trigger"] == "escalate_after" and escalated["escalation_level"] == 1


def test_the_escalation_group_may_vote(services: Services) -> None:
    async def scenario() -> PendingItem:
        item = await hold(services)
        await services.approvals.escalate_due(later(item, minutes=21))
        return await services.approvals.vote(item.id, reviewer("frank"), "approve", "", None)

    assert asyncio.run(scenario()).state is State.APPROVED


def test_on_timeout_escalate_moves_on_with_a_fresh_deadline_then_expires(
        tmp_path: Path) -> None:
    services = open_services(Settings(policy_path=write_policy(tmp_path, 2),
                                      state_dir=tmp_path))

    async def scenario() -> tuple[PendingItem | None, PendingItem | None]:
        item = await hold(services, tier=2)
        deadline = later(item, hours=1)
        await services.approvals.expire_due(deadline)  # on_timeout: escalate, not expire
        escalated = services.approvals.store.get(item.id)
        await services.approvals.expire_due(deadline + timedelta(hours=1))
        return escalated, services.approvals.store.get(item.id)

    try:
        escalated, expired = asyncio.run(scenario())
    finally:
        services.close()
    assert escalated is not None and escalated.state is State.PENDING
    assert escalated.route == "managers" and escalated.expires_at > escalated.created_at
    assert expired is not None and expired.state is State.EXPIRED
    assert "after escalating to `managers`" in str(expired.outcome_reason)
    [record] = services.audit.query(event="approval.escalated")
    assert record["trigger"] == "on_timeout"


def test_on_timeout_allow_approves_at_expiry_as_gatehouse(tmp_path: Path) -> None:
    services = open_services(Settings(policy_path=write_policy(tmp_path, 3),
                                      state_dir=tmp_path))

    async def scenario() -> tuple[PendingItem | None, bool]:
        item = await hold(services, tier=3)
        await services.approvals.expire_due(later(item, minutes=59))
        assert services.approvals.store.get(item.id).state is State.PENDING  # type: ignore[union-attr]
        await services.approvals.expire_due(later(item, hours=1))
        return services.approvals.store.get(item.id), services.approvals.consume(item.id)

    try:
        approved, consumed = asyncio.run(scenario())
    finally:
        services.close()
    assert approved is not None and approved.state is State.APPROVED and consumed
    assert [(v.reviewer, v.verdict) for v in approved.votes] == [(TIMEOUT_REVIEWER, "approve")]
    [record] = services.audit.query(event="approval.approved")
    assert record["reviewer"] == TIMEOUT_REVIEWER and record["on_timeout"] == "allow"
    assert record["approved_by"] == [TIMEOUT_REVIEWER] and record["decided_snapshot_id"]


def test_on_timeout_allow_does_not_approve_under_a_halt(tmp_path: Path) -> None:
    services = open_services(Settings(policy_path=write_policy(tmp_path, 3),
                                      state_dir=tmp_path))

    async def scenario() -> PendingItem | None:
        item = await hold(services, tier=3)
        await services.halts.set("host", "api.github.com", "incident", actor="responder")
        await services.approvals.expire_due(later(item, hours=1))
        return services.approvals.store.get(item.id)

    try:
        expired = asyncio.run(scenario())
    finally:
        services.close()
    assert expired is not None and expired.state is State.EXPIRED and expired.votes == ()
    assert "does not approve while halted" in str(expired.outcome_reason)


def test_on_timeout_deny_expires(services: Services) -> None:
    async def scenario() -> PendingItem | None:
        item = await hold(services)
        await services.approvals.expire_due(later(item, hours=1))
        return services.approvals.store.get(item.id)

    expired = asyncio.run(scenario())
    assert expired is not None and expired.state is State.EXPIRED and expired.votes == ()
    assert records(services, "approval.expired")[0]["reviewer"] == "gatehouse"


def test_the_sweep_runs_on_the_real_clock(services: Services) -> None:
    async def scenario() -> PendingItem | None:
        item = await hold(services)
        await services.approvals.sweep()
        return services.approvals.store.get(item.id)

    swept = asyncio.run(scenario())
    assert swept is not None and swept.state is State.PENDING and swept.escalation_level == 0
    assert utc_now() < datetime.fromisoformat(swept.expires_at)
