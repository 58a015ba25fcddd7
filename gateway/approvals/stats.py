"""Queue health for `GET /v1/queue/stats`: how long held calls wait, against the policy's
targets, and how each reviewer's load looks.

Waits are from hold to decision (`decided_at - created_at`) of every item decided in the last
24 hours, whatever the outcome (approved, denied, expired): that is how long the agent waited.
Percentiles are nearest-rank (the smallest wait with at least that share of waits at or below
it), so a reported p95 is a wait that actually happened. A target is `met` when the percentile
is at or under it; None without a target or without decided items. Review time is from a
reviewer's first opening of an item to their vote; votes cast without opening the item have
none.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from gateway.approvals.fatigue import HOUR
from gateway.approvals.model import QueueEntry, State, Vote
from gateway.clock import iso
from gateway.policy.schema import Queue

WINDOW = timedelta(hours=24)


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile of `values` (`share` from 0 to 1); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def _seconds(start: str, end: str | datetime) -> float:
    end_at = end if isinstance(end, datetime) else datetime.fromisoformat(end)
    return round((end_at - datetime.fromisoformat(start)).total_seconds(), 3)


def _met(value: float | None, target: timedelta | None) -> bool | None:
    if value is None or target is None:
        return None
    return value <= target.total_seconds()


def route_stats(entries: Iterable[QueueEntry], queue: Queue,
                now: datetime) -> list[dict[str, object]]:
    """One row per route and tier: open items and waits of the items decided in the window."""
    by_key: dict[tuple[str, int], list[QueueEntry]] = {}
    for entry in entries:
        by_key.setdefault((entry.route or "", entry.tier), []).append(entry)
    rows = []
    for (route, tier), group in sorted(by_key.items()):
        open_ages = [_seconds(e.created_at, now) for e in group if e.state is State.PENDING]
        decided = [e for e in group if e.state is not State.PENDING and e.decided_at]
        waits = [_seconds(e.created_at, e.decided_at) for e in decided if e.decided_at]
        median, p95 = percentile(waits, 0.5), percentile(waits, 0.95)
        rows.append({
            "route": route or None, "tier": tier,
            "open": len(open_ages), "oldest_open_seconds": max(open_ages, default=None),
            "decided": len(waits),
            "outcomes": dict(Counter(e.state.value for e in decided)),
            "median_wait_seconds": median, "p95_wait_seconds": p95,
            "target_median_wait_seconds": _target(queue.target_median_wait),
            "target_p95_wait_seconds": _target(queue.target_p95_wait),
            "median_met": _met(median, queue.target_median_wait),
            "p95_met": _met(p95, queue.target_p95_wait),
        })
    return rows


def reviewer_stats(reviewers: Iterable[str], entries: Sequence[QueueEntry],
                   votes: Sequence[Vote], cooling: Callable[[str], datetime | None],
                   now: datetime) -> list[dict[str, object]]:
    """One row per reviewer: open items assigned to them, approvals in the last hour, median
    review time over the window's votes, and the end of their cooldown (None: not cooling)."""
    open_assigned = Counter(e.assigned_to for e in entries if e.state is State.PENDING)
    hour_ago = iso(now - HOUR)
    rows = []
    for name in sorted(set(reviewers)):
        theirs = [v for v in votes if v.reviewer == name]
        reviews = [_seconds(v.opened_at, v.at) for v in theirs if v.opened_at]
        until = cooling(name)
        rows.append({
            "reviewer": name, "open_assigned": open_assigned[name],
            "approvals_last_hour": sum(1 for v in theirs
                                       if v.verdict == "approve" and v.at > hour_ago),
            "votes": len(theirs), "median_review_seconds": percentile(reviews, 0.5),
            "cooling_until": iso(until) if until else None,
        })
    return rows


def _target(target: timedelta | None) -> float | None:
    return target.total_seconds() if target is not None else None


def settings_json(queue: Queue) -> Mapping[str, object]:
    """The policy's queue settings as the stats show them (durations in seconds)."""
    return {"target_median_wait_seconds": _target(queue.target_median_wait),
            "target_p95_wait_seconds": _target(queue.target_p95_wait),
            "max_open_per_reviewer": queue.max_open_per_reviewer,
            "cooldown_after_approvals": queue.cooldown_after_approvals,
            "cooldown_seconds": queue.cooldown.total_seconds(),
            "second_review_rate": queue.second_review_rate}
