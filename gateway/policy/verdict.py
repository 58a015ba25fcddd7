"""What a decision says: the verdict, its strictness order, constraints and the full decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    """The four answers. Ordered by strictness, so `max(verdicts)` is the one that wins."""

    ALLOW = "allow"
    ALLOW_WITH_CONSTRAINTS = "allow_with_constraints"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]

    # str's own comparisons would order verdicts alphabetically; compare by strictness instead.
    def __lt__(self, other: object) -> bool:
        return self.strictness < _verdict(other).strictness

    def __le__(self, other: object) -> bool:
        return self.strictness <= _verdict(other).strictness

    def __gt__(self, other: object) -> bool:
        return self.strictness > _verdict(other).strictness

    def __ge__(self, other: object) -> bool:
        return self.strictness >= _verdict(other).strictness


_STRICTNESS = {v: i for i, v in enumerate(Verdict)}


def _verdict(other: object) -> Verdict:
    if not isinstance(other, Verdict):
        raise TypeError(f"cannot compare a verdict with {type(other).__name__}")
    return other


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Constraints:
    """Limits the forward stage applies to an allowed call; None means no limit."""

    timeout_seconds: float | None = None
    max_request_body_bytes: int | None = None

    def merge(self, other: Constraints) -> Constraints:
        """The strictest combination: the smaller of each limit."""
        body = _min(self.max_request_body_bytes, other.max_request_body_bytes)
        return Constraints(
            timeout_seconds=_min(self.timeout_seconds, other.timeout_seconds),
            max_request_body_bytes=None if body is None else int(body),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The outcome for one action, with everything an audit record or a reviewer needs."""

    verdict: Verdict
    rule_ids: tuple[str, ...] = ()  # the rules that produced the winning verdict
    matched_rule_ids: tuple[str, ...] = ()  # every enforcing rule that matched
    reason: str
    snapshot_id: str
    constraints: Constraints = field(default_factory=Constraints)
    tier: int | None = None
    route: str | None = None
    rollback: str | None = None
    shadow: tuple[tuple[str, Verdict], ...] = ()  # shadow rules that matched: what they'd decide
    notify: bool = False  # an allowed call whose rule asks for a notification (playbook)
