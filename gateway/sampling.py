"""Sampled post-execution audit: a stratified sample of forwarded calls for people to review.

Calls that went out without a reviewer are drawn at the policy's `sampling.rate`, multiplied by
the largest weight of their tags (so financial calls can be looked at five times as often), and
always when a mandatory rule holds (an agent's first call of an action type, a large refund).
The draw uses the system's randomness, so an agent cannot predict which calls are looked at.

The review queue lives in the audit trail (`sample.drawn`, `sample.verdict`), like legal holds:
durable, shared by replicas, and each verdict is on the record next to the call it judges.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.policy.conditions import Test, compile_condition
from gateway.policy.globs import Glob
from gateway.policy.params import MISSING
from gateway.policy.schema import Sampling

FORWARDED = frozenset({"allow", "allow_with_constraints"})  # out without a reviewer
VERDICTS = ("fine", "problem")
_random = random.SystemRandom()

Query = Callable[..., list[dict[str, object]]]


@dataclass(frozen=True, slots=True)
class Mandatory:
    actions: tuple[Glob, ...]
    params: tuple[tuple[str, Test], ...]

    def holds(self, action: str, params: Mapping[str, object]) -> bool:
        return any(g.matches(action) for g in self.actions) and all(
            test(params.get(name, MISSING)) for name, test in self.params)


class Sampler:
    def __init__(self, sampling: Sampling, first_seen: Callable[[str, str], bool],
                 draw: Callable[[], float] = _random.random) -> None:
        self._sampling = sampling
        self._first_seen = first_seen  # (agent, action) -> whether this is its first call
        self._draw = draw
        self._always = tuple(
            Mandatory(tuple(Glob(a) for a in rule.actions),
                      tuple((name, compile_condition(c)) for name, c in rule.params.items()))
            for rule in sampling.always)

    def why(self, record: Mapping[str, object]) -> str | None:
        """Why this `call.decided` record is drawn for review, or None when it is not."""
        if record.get("decision") not in FORWARDED:
            return None
        action, agent = str(record.get("action")), str(record.get("agent"))
        params = record.get("params")
        params = params if isinstance(params, Mapping) else {}
        for rule in self._always:
            if rule.holds(action, params):
                return "mandatory"
        if self._sampling.first_time and self._first_seen(agent, action):
            return "first_time_action"
        tags = record.get("tags")
        weight = max((self._sampling.tag_weights.get(str(t), 1.0)
                      for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
                     default=1.0)
        if self._sampling.rate > 0 and self._draw() < min(1.0, self._sampling.rate * weight):
            return "random" if weight == 1.0 else "weighted"
        return None


class FirstSeen:
    """Whether an agent's call of an action type is its first: the trail is asked once per
    (agent, action), then this process remembers."""

    def __init__(self, query: Query) -> None:
        self._query = query
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, agent: str, action: str) -> bool:
        if (agent, action) in self._seen:
            return False
        self._seen.add((agent, action))
        earlier = self._query(agent=agent, action=action, event="call.decided", limit=2)
        return len(earlier) <= 1  # the call itself is already on record


def review_queue(query: Query, *, open_only: bool) -> list[dict[str, object]]:
    """The drawn calls, oldest first, each with its verdict once given."""
    verdicts = {str(r["request_id"]): r for r in query(event="sample.verdict", limit=100_000)}
    items = []
    for drawn in query(event="sample.drawn", limit=100_000):
        verdict = verdicts.get(str(drawn["request_id"]))
        if open_only and verdict is not None:
            continue
        items.append({key: drawn.get(key) for key in (
            "request_id", "ts", "agent", "action", "reason", "url", "params")} | {
            "verdict": verdict.get("verdict") if verdict else None,
            "note": verdict.get("note") if verdict else None,
            "reviewer": verdict.get("reviewer") if verdict else None})
    return items
