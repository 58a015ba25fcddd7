"""Exception escalation: how an agent's call compares with what it usually does.

Rules may match on three signals (`when.retries`, `when.anomaly`, `when.confidence`), so a call
that is routine in form but unusual in context can be held or refused:

- `retries`: how many times this agent sent this exact request (by request hash) in the last
  `RETRY_WINDOW`, before this one. An agent retrying what failed or was refused is a classic
  sign of a plan gone wrong;
- `anomaly`, from 0 to 1: the larger of the agent's call rate in the last minute against its own
  average over the previous hour (10x its usual rate or more is 1), and the novelty of the
  action type in its recent mix (never seen is 1; 10 % or more of its calls is 0). Both need
  a baseline: an agent with less than `MIN_BASELINE_MINUTES` of history, or fewer than
  `MIN_BASELINE_CALLS` calls, scores 0;
- `confidence`: what the agent says of itself in `X-Agent-Confidence` (a number from 0 to 1),
  when it sends one; absent or malformed, a confidence condition does not hold.

Counts are kept per minute per agent, so memory stays bounded however busy the agent is.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

RETRY_WINDOW = 600.0  # seconds
BASELINE_MINUTES = 60
MIN_BASELINE_MINUTES = 5
MIN_BASELINE_CALLS = 20
MAX_HASHES = 10_000  # distinct requests remembered per agent for `retries`
CONFIDENCE_HEADER = "x-agent-confidence"


def confidence(header: str | None) -> float | None:
    """The agent's stated confidence, or None when absent or not a number from 0 to 1."""
    try:
        value = float(header) if header is not None else math.nan
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


@dataclass
class _Agent:
    minutes: deque[tuple[int, Counter[str]]] = field(default_factory=deque)  # oldest first
    seen: dict[str, deque[float]] = field(default_factory=dict)  # request hash -> times


class Behaviour:
    def __init__(self) -> None:
        self._agents: dict[str, _Agent] = {}

    def retries(self, agent: str, request_hash: str, now: float) -> int:
        """Times this exact request was seen from this agent recently; counts this one."""
        state = self._agents.setdefault(agent, _Agent())
        times = state.seen.setdefault(request_hash, deque())
        while times and times[0] < now - RETRY_WINDOW:
            times.popleft()
        earlier = len(times)
        times.append(now)
        if len(state.seen) > MAX_HASHES:
            stale = [h for h, t in state.seen.items() if not t or t[-1] < now - RETRY_WINDOW]
            for request in stale or list(state.seen)[: MAX_HASHES // 10]:
                del state.seen[request]
        return earlier

    def anomaly(self, agent: str, action: str, now: float) -> float:
        """How unusual this call is for this agent (0 to 1); counts this one."""
        state = self._agents.setdefault(agent, _Agent())
        minute = int(now // 60)
        while state.minutes and state.minutes[0][0] <= minute - BASELINE_MINUTES:
            state.minutes.popleft()
        baseline = Counter[str]()
        for when, counts in state.minutes:
            if when < minute:
                baseline.update(counts)
        history = minute - state.minutes[0][0] if state.minutes else 0
        if not state.minutes or state.minutes[-1][0] != minute:
            state.minutes.append((minute, Counter()))
        current = state.minutes[-1][1]
        current[action] += 1
        total = sum(baseline.values())
        if history < MIN_BASELINE_MINUTES or total < MIN_BASELINE_CALLS:
            return 0.0
        usual_rate = total / history
        rate = min(max((sum(current.values()) / usual_rate - 1) / 9, 0.0), 1.0)
        share = baseline[action] / total
        novelty = 1.0 if share == 0 else min(max(1 - share * 10, 0.0), 1.0)
        return round(max(rate, novelty), 3)
