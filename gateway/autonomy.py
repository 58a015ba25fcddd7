"""Graduated autonomy: what an agent may do without a person depends on the level it earned.

The policy's `autonomy.levels` say, per level, which action types and tags need approval
whatever the rules say; a call that needs it at the agent's level is held (rule
`autonomy-level-N`) unless the rules are stricter still. An agent starts at `default_level`.

- Promotion to the next level needs a person's sign-off, and is refused until the criteria
  hold, computed from the audit trail since the agent reached its level: calls that went out,
  the share of them that failed, and time at the level.
- Demotion is automatic: a call refused by policy (a violation), an incident opened on the
  agent, or an error rate above `demote_above_error_rate` takes it down one level, at once.

Levels live in the audit trail (`autonomy.level` records), like legal holds: durable, and each
change is on the record with who made it and why. Each gateway process loads them at start and
follows its own changes; a change made through another replica reaches this one at restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime

from gateway.audit import AuditLog
from gateway.background import Background
from gateway.call import Action
from gateway.clock import utc_now
from gateway.policy import Decision, Verdict
from gateway.policy.globs import Glob
from gateway.policy.schema import Autonomy
from gateway.policy_holder import PolicyHolder

log = logging.getLogger("gatehouse.autonomy")

WENT_OUT = frozenset({"allow", "allow_with_constraints", "approved"})
LOOSER = frozenset({Verdict.ALLOW, Verdict.ALLOW_WITH_CONSTRAINTS})


class AutonomyError(ValueError):
    """A level change that cannot be made as asked."""


def held_at_level(autonomy: Autonomy, level: int, action: Action) -> bool:
    spec = autonomy.levels.get(level)
    if spec is None:
        return False
    return any(Glob(g).matches(action.type) for g in spec.approval_actions) or bool(
        set(spec.approval_tags) & action.tags)


def apply_level(decision: Decision, autonomy: Autonomy | None, level: int,
                action: Action, agent: str) -> Decision:
    """The decision with the agent's level applied: a looser verdict becomes
    require_approval when the level says this call needs a person."""
    if autonomy is None or decision.verdict not in LOOSER or not held_at_level(
            autonomy, level, action):
        return decision
    return dataclasses.replace(
        decision, verdict=Verdict.REQUIRE_APPROVAL, rule_ids=(f"autonomy-level-{level}",),
        reason=f"`{agent}` is at autonomy level {level}, where `{action.type}` needs a "
               "reviewer's approval", tier=decision.tier or 1)


class AutonomyService:
    def __init__(self, audit: AuditLog, policy: PolicyHolder) -> None:
        self._audit = audit
        self._policy = policy
        self._levels: dict[str, tuple[int, str]] = {}  # agent -> (level, since)
        for record in audit.query(event="autonomy.level", limit=1_000_000):
            self._levels[str(record["agent"])] = (int(record["level"]),  # type: ignore[arg-type]
                                                  str(record["ts"]))
        self._background = Background(log)
        audit.on_append.append(self._observe)

    @property
    def autonomy(self) -> Autonomy | None:
        return self._policy.current.model.autonomy

    def level(self, agent: str) -> tuple[int, str | None]:
        """The agent's level, and since when it was set (None: the default, never changed)."""
        autonomy = self.autonomy
        if agent in self._levels:
            return self._levels[agent]
        return (autonomy.default_level if autonomy else 0), None

    def decide(self, decision: Decision, action: Action, agent: str) -> Decision:
        return apply_level(decision, self.autonomy, self.level(agent)[0], action, agent)

    def criteria(self, agent: str, now: datetime | None = None) -> dict[str, object]:
        autonomy = self._require()
        now = now or utc_now()
        level, since = self.level(agent)
        start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        decided = self._all(agent=agent, event="call.decided", since=start)
        went_out = sum(1 for r in decided if r.get("decision") in WENT_OUT)
        failed = len(self._all(agent=agent, event="call.failed", since=start))
        rate = failed / went_out if went_out else 0.0
        first = self._all(agent=agent, event="call.decided", limit=1)
        began = since or (str(first[0]["ts"]) if first else None)
        days = ((now - datetime.fromisoformat(began.replace("Z", "+00:00"))).total_seconds()
                / 86400 if began else 0.0)
        wanted = autonomy.promotion
        return {
            "successful_actions": went_out, "failed_actions": failed,
            "error_rate": round(rate, 4), "days_at_level": round(days, 3),
            "needed": {"successful_actions": wanted.successful_actions,
                       "max_error_rate": wanted.max_error_rate,
                       "days_at_level": wanted.review_period.total_seconds() / 86400},
            "met": went_out >= wanted.successful_actions and rate <= wanted.max_error_rate
            and days * 86400 >= wanted.review_period.total_seconds(),
            "next_level": self._next(level),
        }

    async def promote(self, agent: str, actor: str, reason: str) -> int:
        """The human sign-off: refused while the criteria do not hold."""
        if not reason.strip():
            raise AutonomyError("a promotion needs a `reason`: the sign-off, in words")
        criteria = self.criteria(agent)
        if criteria["next_level"] is None:
            raise AutonomyError(f"`{agent}` is at the highest level already")
        if not criteria["met"]:
            raise AutonomyError(f"`{agent}` does not meet the promotion criteria yet: "
                                f"{criteria}")
        return await self._set(agent, int(criteria["next_level"]), actor,  # type: ignore[call-overload]
                               reason, "promoted")

    async def set_level(self, agent: str, level: int, actor: str, reason: str) -> int:
        """A responder's choice (resuming a halted agent at a level): any level there is."""
        if level not in self._require().levels:
            raise AutonomyError(f"there is no autonomy level {level}; the levels are "
                                f"{', '.join(map(str, sorted(self._require().levels)))}")
        return await self._set(agent, level, actor, reason, "set")

    async def demote(self, agent: str, actor: str, reason: str) -> int | None:
        autonomy = self._require()
        level = self.level(agent)[0]
        lower = [n for n in autonomy.levels if n < level]
        if not lower:
            return None
        return await self._set(agent, max(lower), actor, reason, "demoted")

    async def _set(self, agent: str, level: int, actor: str, reason: str, kind: str) -> int:
        previous = self.level(agent)[0]
        entry = await self._audit.append("autonomy.level", {
            "agent": agent, "level": level, "previous": previous, "kind": kind,
            "actor": actor, "reason": reason})
        self._levels[agent] = (level, entry.ts)
        return level

    def _error_rate_too_high(self, agent: str) -> str:
        """Why the agent's error rate at its level demotes it, or "" when it does not."""
        autonomy = self._require()
        if autonomy.demote_above_error_rate is None:
            return ""
        criteria = self.criteria(agent)
        went_out, rate = int(criteria["successful_actions"]), float(criteria["error_rate"])  # type: ignore[call-overload,arg-type]
        if went_out < autonomy.min_calls or rate <= autonomy.demote_above_error_rate:
            return ""
        return (f"error rate {rate:.0%} over {went_out} calls at this level, above "
                f"{autonomy.demote_above_error_rate:.0%}")

    async def _check_error_rate(self, agent: str) -> None:
        """Counting the agent's calls reads the trail: on a thread, never on the event loop."""
        why = await asyncio.get_running_loop().run_in_executor(
            None, self._error_rate_too_high, agent)
        if why:
            await self.demote(agent, "gatehouse", why)

    def _next(self, level: int) -> int | None:
        higher = [n for n in self._require().levels if n > level]
        return min(higher) if higher else None

    def _require(self) -> Autonomy:
        if (autonomy := self.autonomy) is None:
            raise AutonomyError("the policy has no `autonomy:` section")
        return autonomy

    def _all(self, **filters: object) -> list[dict[str, object]]:
        limit = filters.pop("limit", 1_000_000)
        return self._audit.query(limit=limit, **filters)  # type: ignore[arg-type]

    def _observe(self, event: str, fields: dict[str, object]) -> None:
        """Automatic demotion: a call refused by policy, an incident on the agent, or (checked
        in the background) its error rate."""
        if self.autonomy is None:
            return
        agent = fields.get("agent")
        if not isinstance(agent, str):
            return
        if event == "call.decided" and fields.get("decision") == "denied":
            why = f"policy violation: {fields.get('request_id')} refused ({fields.get('reason')})"
        elif event == "incident.opened":
            why = f"incident {fields.get('incident_id')}: {fields.get('title')}"
        elif event == "call.failed" and self.autonomy.demote_above_error_rate is not None:
            self._background.spawn(self._check_error_rate(agent), f"error rate of {agent}")
            return
        else:
            return
        self._background.spawn(self.demote(agent, "gatehouse", why), f"demoting {agent}")

