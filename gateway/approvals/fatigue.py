"""Reviewer fatigue (`approvals.queue`): a cooldown after many approvals, and a sampled second
review, so that a tired or rubber-stamping reviewer is not the only thing between an agent and
a side effect.

Cooldown: a reviewer whose approvals in the hour up to their latest approval number
`cooldown_after_approvals` or more may not approve again until `cooldown` after that latest
approval. Once it has passed they may approve one more; if the hour still holds that many, the
next cooldown starts from it, so after a burst a reviewer approves at most one call per
`cooldown` until their hourly count falls below the limit. Denials are never refused: saying
no is always safe. It is worked out from the votes in the store, so it survives restarts and
needs no state of its own.

Second review: when an approval would release a call, it is drawn with probability
`second_review_rate` to need one more distinct approval first. The draw comes from the operating
system's randomness (`random.SystemRandom`): neither an agent nor a reviewer can predict which
approvals get the second look. Tests pass their own draw.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from gateway.policy.schema import Queue

HOUR = timedelta(hours=1)

Draw = Callable[[float], bool]
"""Given a rate from 0 to 1, whether this approval is drawn for a second review."""

_system_random = random.SystemRandom()


def sampled(rate: float) -> bool:
    """True with probability `rate`."""
    return rate > 0 and _system_random.random() < rate


def approvals_since(queue: Queue, now: datetime) -> datetime:
    """How far back a reviewer's approvals matter to `cooling_until` at `now`."""
    return now - queue.cooldown - HOUR


def cooling_until(approved_at: Sequence[datetime], queue: Queue,
                  now: datetime) -> datetime | None:
    """When a reviewer who approved at `approved_at` (oldest first, at least as far back as
    `approvals_since`) may approve again; None if they may now."""
    limit = queue.cooldown_after_approvals
    if limit is None or not approved_at:
        return None
    latest = approved_at[-1]
    until = latest + queue.cooldown
    if now >= until:
        return None
    in_hour = sum(1 for at in approved_at if latest - HOUR < at <= latest)
    return until if in_hour >= limit else None
