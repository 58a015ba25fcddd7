"""Automatic containment: sliding windows over each agent's calls, as the audit trail records them.

`TriggerWatch` is fed every audit record once it is durable (`call.decided`, `call.response`)
and answers which policy `triggers:` fire. What it counts, per agent:

- `denials`: calls refused by policy (`denied`) or by a reviewer (`approval_denied`);
- `quarantines`: responses held (`call.response` with outcome quarantine or unscannable);
- `repeats`: the same request (by request hash) again: an agent in a loop. Retries of a held
  call (`approval_pending`) are how agents are told to wait, so they are not counted;
- `calls`: every call, for a rate ceiling;
- `dlp`: a request carrying an entity that a `request_contains` rule looks for.

Calls refused by a halt are never counted: a halted agent knocking on the door is contained
already. A trigger that fires forgets its window, so it fires again only on fresh evidence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.policy.schema import Trigger

DENIALS = frozenset({"denied", "approval_denied"})
QUARANTINES = frozenset({"quarantine", "unscannable"})
NOT_A_REPEAT = frozenset({"approval_pending", "quarantined", "quarantine_released"})
MAX_WINDOWS = 100_000  # windows kept at once; the stalest are dropped beyond this


@dataclass(frozen=True, slots=True)
class Firing:
    trigger: Trigger
    agent: str
    action: str | None  # of the call that completed the count
    evidence: tuple[str, ...]  # the request ids counted, oldest first

    @property
    def summary(self) -> str:
        counted = " or ".join(self.trigger.count)
        seconds = int(self.trigger.within.total_seconds())
        return (f"trigger `{self.trigger.id}`: {len(self.evidence)} {counted} by "
                f"`{self.agent}` within {seconds} s")


def counted(trigger: Trigger, event: str, record: dict[str, object]) -> str | None:
    """The window key this record counts in for `trigger`, or None if it does not count."""
    agent = record.get("agent")
    if not isinstance(agent, str) or record.get("decision") == "halted":
        return None
    for kind in trigger.count:
        if event == "call.response":
            if kind == "quarantines" and record.get("outcome") in QUARANTINES:
                return agent
        elif event == "call.decided":
            decision = record.get("decision")
            if (kind == "denials" and decision in DENIALS or kind == "calls"
                    or kind == "dlp" and record.get("request_entities")):
                return agent
            if kind == "repeats" and decision not in NOT_A_REPEAT and record.get("request_hash"):
                return f"{agent}\x00{record['request_hash']}"
    return None


class TriggerWatch:
    def __init__(self, triggers: Iterable[Trigger]) -> None:
        self.triggers = tuple(triggers)
        self._windows: dict[tuple[str, str], deque[tuple[float, str]]] = {}

    def observe(self, event: str, record: dict[str, object], now: float) -> list[Firing]:
        """Count one durable audit record at `now` (monotonic seconds); the triggers it fires."""
        fired = []
        for trigger in self.triggers:
            key = counted(trigger, event, record)
            if key is None:
                continue
            window = self._windows.setdefault((trigger.id, key), deque())
            window.append((now, str(record.get("request_id"))))
            horizon = now - trigger.within.total_seconds()
            while window and window[0][0] < horizon:
                window.popleft()
            if len(window) >= trigger.at_least:
                action = record.get("action")
                fired.append(Firing(trigger, str(record["agent"]),
                                    action if isinstance(action, str) else None,
                                    tuple(request_id for _, request_id in window)))
                del self._windows[(trigger.id, key)]
        if len(self._windows) > MAX_WINDOWS:
            self._forget_stalest()
        return fired

    def _forget_stalest(self) -> None:
        by_age = sorted(self._windows, key=lambda key: self._windows[key][-1][0])
        for key in by_age[: len(by_age) - MAX_WINDOWS // 2]:
            del self._windows[key]
