"""Queue statistics from given items and votes: nearest-rank percentiles against targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.approvals.model import QueueEntry, State, Vote
from gateway.approvals.stats import percentile, reviewer_stats, route_stats
from gateway.clock import iso
from gateway.policy.schema import Queue

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return iso(NOW + timedelta(minutes=minutes))


def entry(created: float, decided: float | None, state: State = State.CONSUMED,
          route: str | None = "ops", tier: int = 1,
          assigned_to: str | None = None) -> QueueEntry:
    return QueueEntry(route=route, tier=tier, state=state, created_at=at(created),
                      decided_at=at(decided) if decided is not None else None,
                      assigned_to=assigned_to)


@pytest.mark.parametrize(("values", "share", "expected"), [
    ([], 0.5, None),
    ([7.0], 0.95, 7.0),
    ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),  # the lower middle: a wait that happened
    ([float(v) for v in range(1, 101)], 0.95, 95.0),
    ([float(v) for v in range(1, 21)], 0.95, 19.0),
    ([1.0, 2.0], 1.0, 2.0),
])
def test_percentiles_are_nearest_rank(values: list[float], share: float,
                                      expected: float | None) -> None:
    assert percentile(values, share) == expected


def test_waits_per_route_and_tier_against_the_targets() -> None:
    entries = [entry(-60, -59), entry(-60, -58, State.DENIED), entry(-60, -50, State.EXPIRED),
               entry(-30, None, State.PENDING), entry(-5, None, State.PENDING),
               entry(-60, -30, route="finance", tier=3)]
    queue = Queue.model_validate({"target_median_wait": "2m", "target_p95_wait": "5m"})
    finance, ops = route_stats(entries, queue, NOW)
    assert ops == {
        "route": "ops", "tier": 1, "open": 2, "oldest_open_seconds": 1800.0, "decided": 3,
        "outcomes": {"consumed": 1, "denied": 1, "expired": 1},
        "median_wait_seconds": 120.0, "p95_wait_seconds": 600.0,
        "target_median_wait_seconds": 120.0, "target_p95_wait_seconds": 300.0,
        "median_met": True, "p95_met": False}
    assert (finance["route"], finance["tier"], finance["open"]) == ("finance", 3, 0)
    assert finance["oldest_open_seconds"] is None and finance["median_wait_seconds"] == 1800.0
    assert finance["median_met"] is False


def test_without_targets_or_decisions_met_is_unknown() -> None:
    [row] = route_stats([entry(-1, None, State.PENDING, route=None)], Queue(), NOW)
    assert row["route"] is None and row["decided"] == 0
    assert (row["median_wait_seconds"], row["median_met"], row["p95_met"]) == (None, None, None)


def test_reviewers_load_recent_approvals_review_time_and_cooldown() -> None:
    entries = [entry(-10, None, State.PENDING, assigned_to="dave"),
               entry(-9, None, State.PENDING, assigned_to="dave"),
               entry(-90, -80, assigned_to="erin")]
    votes = [Vote("dave", "approve", "", at(-120), at(-125)),  # over an hour ago
             Vote("dave", "approve", "", at(-30), at(-31)),
             Vote("dave", "deny", "no", at(-20), None),  # never opened: no review time
             Vote("erin", "approve", "", at(-80), at(-83))]
    cooling = {"dave": NOW + timedelta(minutes=3)}
    dave, erin, frank = reviewer_stats(["frank", "erin", "dave"], entries, votes,
                                       cooling.get, NOW)
    assert dave == {"reviewer": "dave", "open_assigned": 2, "approvals_last_hour": 1,
                    "votes": 3, "median_review_seconds": 60.0,
                    "cooling_until": at(3)}
    assert (erin["open_assigned"], erin["approvals_last_hour"]) == (0, 0)
    assert erin["median_review_seconds"] == 180.0 and erin["cooling_until"] is None
    assert frank["votes"] == 0 and frank["median_review_seconds"] is None
