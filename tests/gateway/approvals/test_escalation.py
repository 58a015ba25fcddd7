"""Escalation and timeouts as pure rules: where an undecided item goes next, who may then vote,
and what expiry means (never an approval unless the item's own low tier says so)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.approvals.escalation import (
    Timeout,
    escalate_at,
    escalates_next,
    expiry_notice_at,
    next_group,
    on_timeout,
)
from gateway.approvals.model import HeldRequest, PendingItem, State
from gateway.approvals.review import VoteRefused, check_vote, may_review
from gateway.policy.schema import Approvals
from gateway.tokens import Principal, Role

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN = ["ops", "managers", "directors"]
GROUPS = {"finance": ["alice"], "ops": ["dave"], "managers": ["frank"], "directors": ["gina"]}
ITEM = PendingItem(
    id="p_0123456789ab", request_hash="ab" * 32, agent="ops-bot", tenant=None,
    action="github.write", tags=(), params={}, rule_ids=("gh",), reason="reviewed",
    rollback=None, tier=1, route="finance", approvals_needed=1, snapshot_id="1:aaaaaaaaaaaa",
    request=HeldRequest(method="PUT", scheme="https", host="api.github.com", port=443,
                        path="/x", query=(), headers=(), body=b""),
    state=State.PENDING, created_at="2026-01-01T00:00:00.000000Z",
    expires_at="2026-01-01T04:00:00.000000Z")


def approvals(**settings: object) -> Approvals:
    return Approvals.model_validate({"escalation": CHAIN, "groups": GROUPS, **settings})


@pytest.mark.parametrize(("route", "earlier", "expected"), [
    ("finance", (), "ops"),  # not in the chain: its first group
    (None, (), "ops"),  # routed to nobody in particular
    ("ops", (), "managers"),  # in the chain: the group after it
    ("managers", ("finance", "ops"), "directors"),
    ("directors", ("ops", "managers"), None),  # the end of the chain
    ("finance", ("ops",), "managers"),  # a group that had it already is skipped
])
def test_the_next_group(route: str | None, earlier: tuple[str, ...],
                        expected: str | None) -> None:
    assert next_group(CHAIN, route, earlier) == expected


def test_an_item_escalates_along_the_running_chain() -> None:
    moved = replace(ITEM, route="ops", earlier_routes=("finance",), escalation_level=1)
    assert escalates_next(ITEM, approvals()) == "ops"
    assert escalates_next(moved, approvals()) == "managers"
    assert escalates_next(moved, approvals(escalation=[])) is None


def test_escalation_is_scheduled_only_with_escalate_after_and_a_group_to_go_to() -> None:
    assert escalate_at(approvals(), "ops", (), T0) is None
    assert escalate_at(approvals(escalate_after="20m"), "ops", (), T0) == T0 + \
        timedelta(minutes=20)
    assert escalate_at(approvals(escalate_after="20m"), "directors", (), T0) is None


def test_expiring_soon_comes_at_four_fifths_of_the_way() -> None:
    assert expiry_notice_at(T0, T0 + timedelta(hours=4)) == T0 + timedelta(minutes=192)


@pytest.mark.parametrize(("settings", "needed", "expected"), [
    ({}, 1, Timeout.DENY),  # the default
    ({"on_timeout": "escalate"}, 1, Timeout.ESCALATE),
    ({"tiers": {1: {"on_timeout": "allow"}}}, 1, Timeout.ALLOW),  # the tier says so
    ({"tiers": {1: {"on_timeout": "allow"}}}, 2, Timeout.DENY),  # an older, stricter item
    ({"on_timeout": "escalate", "tiers": {1: {"on_timeout": "deny"}}}, 1, Timeout.DENY),
    ({"tiers": {1: {"on_timeout": "escalate"}}}, 1, Timeout.ESCALATE),
    ({"on_timeout": "allow"}, 1, Timeout.DENY),  # never from the approvals-wide setting
    ({"tiers": {2: {"on_timeout": "allow"}}}, 1, Timeout.DENY),  # another tier's choice
])
def test_what_expiry_means(settings: dict[str, object], needed: int,
                           expected: Timeout) -> None:
    assert on_timeout(replace(ITEM, approvals_needed=needed), approvals(**settings)) is expected


def test_escalation_widens_who_may_vote_and_takes_the_item_from_nobody() -> None:
    moved = replace(ITEM, route="managers", earlier_routes=("finance", "ops"),
                    escalation_level=2)
    assert [name for name in ("alice", "dave", "frank", "gina")
            if may_review(moved, GROUPS, name)] == ["alice", "dave", "frank"]
    assert may_review(replace(ITEM, route="ops", earlier_routes=(None,)), GROUPS, "gina")


def test_a_refusal_names_the_groups_that_had_the_item() -> None:
    moved = replace(ITEM, route="managers", earlier_routes=("finance",), escalation_level=1)
    with pytest.raises(VoteRefused) as refused:
        check_vote(moved, tier=approvals().tiers[1], groups=GROUPS,
                   reviewer=Principal(kind="person", name="gina", role=Role.REVIEWER),
                   verdict="approve", reason="", confirm=None, opened_at=None, now=T0)
    assert refused.value.status == 403
    assert "not in `managers`" in str(refused.value) and "nor in `finance`" in str(refused.value)
