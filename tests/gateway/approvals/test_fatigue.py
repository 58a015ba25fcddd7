"""Cooldown after many approvals and the second-review draw, as pure rules on a given clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.approvals.fatigue import approvals_since, cooling_until, sampled
from gateway.policy.schema import Queue

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
QUEUE = Queue.model_validate({"cooldown_after_approvals": 3, "cooldown": "15m"})


def minutes(*offsets: float) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in offsets]


def test_fewer_approvals_than_the_limit_never_cool() -> None:
    assert cooling_until(minutes(0, 1), QUEUE, T0 + timedelta(minutes=2)) is None


def test_the_limit_within_an_hour_cools_for_the_cooldown_after_the_latest() -> None:
    approved = minutes(0, 20, 50)
    assert cooling_until(approved, QUEUE, T0 + timedelta(minutes=51)) == T0 + \
        timedelta(minutes=65)
    assert cooling_until(approved, QUEUE, T0 + timedelta(minutes=65)) is None


def test_after_the_cooldown_one_more_approval_cools_again_while_the_hour_is_full() -> None:
    approved = minutes(0, 20, 50, 66)
    assert cooling_until(approved, QUEUE, T0 + timedelta(minutes=70)) == T0 + \
        timedelta(minutes=81)


def test_approvals_more_than_an_hour_before_the_latest_do_not_count() -> None:
    assert cooling_until(minutes(0, 1, 61), QUEUE, T0 + timedelta(minutes=62)) is None


def test_without_a_limit_nobody_cools() -> None:
    assert cooling_until(minutes(0, 1, 2, 3), Queue(), T0 + timedelta(minutes=4)) is None


def test_the_approvals_that_matter_reach_back_an_hour_and_a_cooldown() -> None:
    assert approvals_since(QUEUE, T0) == T0 - timedelta(minutes=75)


@pytest.mark.parametrize(("rate", "drawn"), [(0.0, False), (1.0, True)])
def test_the_draw_at_the_extremes(rate: float, drawn: bool) -> None:
    assert {sampled(rate) for _ in range(200)} == {drawn}


def test_the_draw_hits_about_its_rate() -> None:
    hits = sum(sampled(0.25) for _ in range(4000))
    assert 800 < hits < 1200  # 1000 expected; this band is > 7 standard deviations wide
