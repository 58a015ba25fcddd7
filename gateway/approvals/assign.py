"""Who is asked to look at a held call first: round-robin below a cap.

An item routed to a group is assigned to the member with the fewest open (pending) assigned
items who is below `approvals.queue.max_open_per_reviewer`; among equals the one assigned
longest ago (never assigned comes first), then by name, so a quiet queue still rotates rather
than landing on the first name every time. With every member at the cap the item stays
unassigned. Assignment is advice for the queue, never a permission: any member of the group
(or of a group it escalated from) may still vote, so a reviewer away from their desk holds
nothing up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Load:
    open: int = 0  # pending items assigned to the reviewer
    last_assigned: str | None = None  # when they were last given one (UTC ISO)


IDLE = Load()


def choose(members: Iterable[str], loads: Mapping[str, Load], cap: int | None) -> str | None:
    """The member to assign a new item to, or None when everyone is at `cap`."""
    below = [m for m in dict.fromkeys(members) if cap is None or loads.get(m, IDLE).open < cap]
    if not below:
        return None

    def order(member: str) -> tuple[int, str, str]:
        load = loads.get(member, IDLE)
        return load.open, load.last_assigned or "", member

    return min(below, key=order)
