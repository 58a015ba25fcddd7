"""Where an undecided held call goes next, and what running out of time means for it.

Pure rules; `ApprovalService` applies them on its once-a-second sweep. An item moves up
`approvals.escalation` after `escalate_after` (counted again from each move), and at expiry
`on_timeout` decides: `deny` expires it (refused), `escalate` moves it on with a fresh
`expire_after` while groups remain and then expires it, and `allow` approves it, but only where
its own tier says so (the policy check keeps that to tiers of one approval without a typed
phrase). Expiry never approves by default.

Escalation widens who may decide; it takes the item from nobody (see `review.may_review`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.approvals.model import PendingItem
from gateway.policy.schema import Approvals

EXPIRY_NOTICE = 0.8  # "expiring soon" goes out once this share of the time to expiry has passed


class Timeout(StrEnum):
    DENY = "deny"
    ESCALATE = "escalate"
    ALLOW = "allow"


def next_group(chain: Sequence[str], route: str | None,
               earlier: Sequence[str | None] = ()) -> str | None:
    """The group after `route` in the chain (its first group when `route` is not in it),
    skipping groups that have had the item already; None at the end of the chain."""
    start = chain.index(route) + 1 if route in chain else 0
    held = {route, *earlier}
    return next((group for group in chain[start:] if group not in held), None)


def escalates_next(item: PendingItem, approvals: Approvals) -> str | None:
    """The group this item would move to now under `approvals`."""
    return next_group(approvals.escalation, item.route, item.earlier_routes)


def escalate_at(approvals: Approvals, route: str | None, earlier: Sequence[str | None],
                since: datetime) -> datetime | None:
    """When an item now routed to `route` moves on: None without `escalate_after` or once
    the chain has no group left for it."""
    if approvals.escalate_after is None or next_group(approvals.escalation, route,
                                                      earlier) is None:
        return None
    return since + approvals.escalate_after


def on_timeout(item: PendingItem, approvals: Approvals) -> Timeout:
    """What expiry does to this item. `allow` counts only when the item's own tier sets it and
    the item needed one approval (a tier changed by a reload does not loosen an older item)."""
    tier = approvals.tiers.get(item.tier)
    if tier is not None and tier.on_timeout is not None:
        if tier.on_timeout == Timeout.ALLOW:
            return Timeout.ALLOW if item.approvals_needed == 1 else Timeout.DENY
        return Timeout(tier.on_timeout)
    return Timeout.ESCALATE if approvals.on_timeout == Timeout.ESCALATE else Timeout.DENY


def expiry_notice_at(start: datetime, expires: datetime) -> datetime:
    """When to say "expiring soon": EXPIRY_NOTICE of the way from `start` to `expires`."""
    return start + timedelta(seconds=(expires - start).total_seconds() * EXPIRY_NOTICE)
