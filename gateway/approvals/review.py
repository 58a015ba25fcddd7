"""Who may vote on a held call, and what an approval must carry (DESIGN.md, "Approvals").

Pure rules, checked before a vote is stored: the reviewer's role and group (the group the call
is routed to, or one it escalated from), no self-approval, one vote per reviewer, and the tier's
friction (reason, typed confirmation phrase, and a minimum review time counted from this
reviewer's first look at the item).
"""

from __future__ import annotations

from datetime import datetime

from gateway.approvals.model import PendingItem, State
from gateway.policy.schema import Tier
from gateway.tokens import Principal, Role

APPROVE = "approve"
DENY = "deny"


class VoteRefused(Exception):
    """A vote that may not be counted; status and type are what the admin API answers."""

    def __init__(self, status: int, error_type: str, message: str, **fields: object) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.fields = fields  # more for the caller, e.g. `until` for a cooldown


def confirm_phrase(item: PendingItem) -> str:
    """What a reviewer types to confirm a tier that asks for it: the action and the item."""
    return f"{item.action} {item.id}"


def may_review(item: PendingItem, groups: dict[str, list[str]], name: str) -> bool:
    """Members of the item's group, or of any group it escalated from: escalation widens who
    may decide and takes the item from nobody (a reviewer may be half-way through a minimum
    review time). An item that was never routed is open to every reviewer."""
    return any(group is None or name in groups.get(group, ()) for group in item.reviewer_groups)


def check_vote(item: PendingItem, *, tier: Tier, groups: dict[str, list[str]],
               reviewer: Principal, verdict: str, reason: str, confirm: str | None,
               opened_at: datetime | None, now: datetime) -> None:
    """Raise VoteRefused naming what is wrong and how to fix it; return if the vote counts."""
    if item.state is not State.PENDING:
        raise VoteRefused(409, "conflict", f"`{item.id}` is {item.state.value}; a decided "
                                           "item stays decided")
    if not reviewer.may(Role.REVIEWER):
        raise VoteRefused(403, "forbidden", f"role `{reviewer.role}` may not vote; reviewers "
                                            "and admins may")
    if reviewer.role is not Role.ADMIN and not may_review(item, groups, reviewer.name):
        earlier = ", ".join(f"`{g}`" for g in item.earlier_routes)
        raise VoteRefused(403, "forbidden", f"`{reviewer.name}` is not in `{item.route}`, the "
                                            "group this call is routed to"
                                            + (f", nor in {earlier}, which had it before it "
                                               "escalated" if earlier else ""))
    if any(v.reviewer == reviewer.name for v in item.votes):
        raise VoteRefused(409, "conflict", f"`{reviewer.name}` has already voted on "
                                           f"`{item.id}`; one vote per reviewer")
    if verdict == DENY:
        if not reason.strip():
            raise VoteRefused(422, "invalid_request", "a denial needs a `reason`: the agent "
                                                      "is told it")
        return
    if verdict != APPROVE:
        raise VoteRefused(422, "invalid_request", f"unknown verdict `{verdict}`")
    if reviewer.name == item.agent:
        raise VoteRefused(403, "forbidden", "a reviewer cannot approve a call made under "
                                            "their own identity")
    if tier.min_review_seconds and opened_at is None:
        raise VoteRefused(422, "invalid_request", f"tier {item.tier} needs "
                                                  f"{tier.min_review_seconds} s of review: "
                                                  f"open the item first "
                                                  f"(GET /v1/pending/{item.id})")
    if tier.reason_required and not reason.strip():
        raise VoteRefused(422, "invalid_request", f"tier {item.tier} needs a `reason` for "
                                                  "every approval")
    if tier.confirm_phrase and (confirm or "").strip() != confirm_phrase(item):
        raise VoteRefused(422, "invalid_request", f"tier {item.tier} needs the confirmation "
                                                  f"phrase: send `confirm`: "
                                                  f"`{confirm_phrase(item)}`")
    if tier.min_review_seconds and opened_at is not None:
        remaining = tier.min_review_seconds - (now - opened_at).total_seconds()
        if remaining > 0:
            raise VoteRefused(422, "invalid_request", f"tier {item.tier} needs "
                                                      f"{tier.min_review_seconds} s of review "
                                                      f"from first opening; {remaining:.0f} s "
                                                      "to go")
