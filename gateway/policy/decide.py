"""The decision: a pure function of (action, call, policy snapshot, clock).

Every enforcing rule that matches applies and the strictest verdict wins (deny >
require_approval > allow_with_constraints > allow); no match gives the policy default. Rules are
indexed by action type (exact types in a dict, globs bucketed by their literal prefix), so the
cost of a decision does not grow with the rules written for other actions. One built-in rule,
`mcp-session`, allows the MCP session messages `classify` recognises; policy rules may be stricter.

A condition that cannot be judged (an unreadable param, a request that was not scanned for the
entities `request_contains` names) never earns an allow and never dodges a refusal: it fails a
rule that allows and holds for a rule that denies or requires approval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.behaviour import CONFIDENCE_HEADER, confidence
from gateway.call import Action, Call
from gateway.policy.classify import MCP_SESSION
from gateway.policy.conditions import Test, compile_condition
from gateway.policy.globs import Glob
from gateway.policy.hosts import HostPattern, normalise_host, parse_host_pattern
from gateway.policy.params import MISSING
from gateway.policy.schema import Rule
from gateway.policy.verdict import Constraints, Decision, Verdict

if TYPE_CHECKING:
    from gateway.policy.snapshot import Policy

_CACHE_LIMIT = 4096
MCP_SESSION_RULE = "mcp-session"
RESERVED_RULE_IDS = frozenset({"egress", "default", MCP_SESSION_RULE})
"""Ids decisions use for things that are not policy rules; a policy rule may not take them."""
_PHRASES = {
    Verdict.ALLOW: "a rule allows this action",
    Verdict.ALLOW_WITH_CONSTRAINTS: "a rule allows this action with constraints",
    Verdict.REQUIRE_APPROVAL: "a rule requires approval for this action",
    Verdict.DENY: "a rule denies this action",
}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its `when` compiled into cheap tests."""

    order: int
    id: str
    verdict: Verdict
    shadow: bool
    tier: int | None
    route: str | None
    reason: str | None
    rollback: str | None
    notify: bool
    constraints: Constraints
    expires: datetime | None
    agents: tuple[Glob, ...] | None
    tenants: frozenset[str] | None
    hosts: tuple[HostPattern, ...] | None
    methods: frozenset[str] | None
    tags: frozenset[str]
    params: tuple[tuple[str, Test], ...]
    entities: frozenset[str] | None  # `request_contains`: any of these found in the request
    signals: tuple[tuple[str, Test], ...] = ()  # `retries`, `anomaly`, `confidence`

    @classmethod
    def compile(cls, order: int, rule: Rule) -> CompiledRule:
        when, limits = rule.when, rule.constraints
        approval = rule.decision is Verdict.REQUIRE_APPROVAL
        return cls(
            order=order,
            id=rule.id,
            verdict=rule.decision,
            shadow=rule.mode == "shadow",
            tier=(rule.tier or 1) if approval else None,
            route=rule.route,
            reason=rule.reason,
            rollback=rule.rollback,
            notify=rule.notify,
            constraints=Constraints(
                timeout_seconds=limits.timeout_seconds,
                max_request_body_bytes=limits.max_request_body_bytes,
            )
            if limits
            else Constraints(),
            expires=rule.expires,
            agents=tuple(Glob(a) for a in when.agent) if when.agent else None,
            tenants=frozenset(when.tenant) if when.tenant else None,
            hosts=tuple(map(parse_host_pattern, when.host)) if when.host else None,
            methods=frozenset(when.method) if when.method else None,
            tags=frozenset(when.tags),
            params=tuple((name, compile_condition(c)) for name, c in when.params.items()),
            entities=frozenset(when.request_contains) if when.request_contains else None,
            signals=tuple((name, compile_condition(condition)) for name, condition in (
                ("retries", when.retries), ("anomaly", when.anomaly),
                ("confidence", when.confidence)) if condition is not None),
        )

    @classmethod
    def builtin(cls, rule_id: str, verdict: Verdict, reason: str) -> CompiledRule:
        """A rule Gatehouse always has; it applies before the policy's rules, which may be
        stricter (the strictest verdict still wins)."""
        return cls(
            order=-1,
            id=rule_id,
            verdict=verdict,
            shadow=False,
            tier=None,
            route=None,
            reason=reason,
            rollback=None,
            notify=False,
            constraints=Constraints(),
            expires=None,
            agents=None,
            tenants=None,
            hosts=None,
            methods=None,
            tags=frozenset(),
            params=(),
            entities=None,
        )

    def applies(self, action: Action, call: Call, tenant: str | None, now: datetime) -> bool:
        if self.expires is not None and _aware(now) >= self.expires:
            return False
        if self.methods is not None and call.method.upper() not in self.methods:
            return False
        if self.hosts is not None:
            host = normalise_host(call.host)
            if not any(p.matches(host, call.port) for p in self.hosts):
                return False
        if self.agents is not None and not any(g.matches(call.agent) for g in self.agents):
            return False
        if self.tenants is not None and tenant not in self.tenants:
            return False
        if not self.tags <= action.tags:
            return False
        unknown = False
        if self.entities is not None:
            found = call.request_entities
            if found is None:
                unknown = True  # not scanned: it may carry them
            elif self.entities.isdisjoint(found):
                return False
        for name, test in self.signals:
            if not test(_signal(name, call)):
                return False
        params = action.params
        for name, test in self.params:
            if name in action.unreadable:
                unknown = True  # present, but with no single value to test
            elif not test(params.get(name, MISSING)):
                return False
        # an unknown condition never earns an allow, and never dodges a refusal
        return not unknown or self.verdict in (Verdict.DENY, Verdict.REQUIRE_APPROVAL)


def _aware(now: datetime) -> datetime:
    """A naive clock reading is taken as UTC."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


class RuleIndex:
    """Rules by action type: exact types in a dict, globs bucketed by their literal prefix."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._exact: dict[str, list[CompiledRule]] = {}
        self._prefixed: dict[str, list[tuple[Glob, CompiledRule]]] = {}
        self._cache: dict[str, tuple[CompiledRule, ...]] = {}
        self._exact[MCP_SESSION] = [
            CompiledRule.builtin(
                MCP_SESSION_RULE,
                Verdict.ALLOW,
                "MCP session messages (handshake, tool list, ping) to a declared MCP endpoint "
                "are allowed",
            )
        ]
        entities: set[str] = set()
        for order, rule in enumerate(rules):
            compiled = CompiledRule.compile(order, rule)
            entities.update(compiled.entities or ())
            for pattern in rule.when.action or ["*"]:
                glob = Glob(pattern)
                if glob.is_literal:
                    self._exact.setdefault(pattern, []).append(compiled)
                else:
                    self._prefixed.setdefault(glob.prefix, []).append((glob, compiled))
        # Only the prefix lengths that occur are tried, so a long type costs no more.
        self._lengths = sorted({len(prefix) for prefix in self._prefixed})
        self.dlp_entities = frozenset(entities)
        """Every entity type a rule (enforcing or shadow) asks `request_contains` about."""

    def candidates(self, action_type: str) -> tuple[CompiledRule, ...]:
        """The rules whose action pattern matches this type, in policy order."""
        cached = self._cache.get(action_type)
        if cached is not None:
            return cached
        found = {r.order: r for r in self._exact.get(action_type, ())}
        for length in self._lengths:
            if length > len(action_type):
                break
            for glob, rule in self._prefixed.get(action_type[:length], ()):
                if glob.matches(action_type):
                    found[rule.order] = rule
        result = tuple(found[order] for order in sorted(found))
        if len(self._cache) >= _CACHE_LIMIT:  # MCP tool names make types unbounded
            self._cache.clear()
        self._cache[action_type] = result
        return result


def dlp_entities(policy: Policy) -> frozenset[str]:
    """The entity types to scan a request for before deciding on it: the union of every rule's
    `request_contains`, enforcing and shadow. Empty: no rule needs a scan, so leave
    `Call.request_entities` at None."""
    return policy.rule_index.dlp_entities


def _signal(name: str, call: Call) -> object:
    if name == "confidence":
        stated = confidence(call.header(CONFIDENCE_HEADER))
        return MISSING if stated is None else stated
    return call.retries if name == "retries" else call.anomaly


def decide(policy: Policy, action: Action, call: Call, now: datetime) -> Decision:
    """The decision for one classified call under this policy snapshot."""
    tenant = policy.agent_tenant(call.agent)
    enforcing: list[CompiledRule] = []
    shadow: list[CompiledRule] = []
    for rule in policy.rule_index.candidates(action.type):
        if rule.applies(action, call, tenant, now):
            (shadow if rule.shadow else enforcing).append(rule)
    decision = _combine(policy, enforcing, tuple((r.id, r.verdict) for r in shadow))
    if not policy.shadow_mode:
        return decision
    matched = sorted(enforcing + shadow, key=lambda r: r.order)
    would = tuple((r.id, r.verdict) for r in matched)
    return in_shadow_mode(decision, would if enforcing else (*would, ("default", policy.default)))


def _combine(
    policy: Policy, enforcing: list[CompiledRule], shadow: tuple[tuple[str, Verdict], ...]
) -> Decision:
    snapshot_id = policy.snapshot_id
    if not enforcing:
        default = policy.default
        return Decision(
            verdict=default,
            reason=f"no rule matched; the policy default is {default}",
            snapshot_id=snapshot_id,
            tier=1 if default is Verdict.REQUIRE_APPROVAL else None,
            shadow=shadow,
        )
    verdict = max(r.verdict for r in enforcing)
    winners = [r for r in enforcing if r.verdict is verdict]
    lead = max(winners, key=lambda r: r.tier or 0)  # the highest tier decides tier and route
    constraints = Constraints()
    if verdict is Verdict.ALLOW_WITH_CONSTRAINTS:
        for rule in winners:
            constraints = constraints.merge(rule.constraints)
    return Decision(
        verdict=verdict,
        rule_ids=tuple(r.id for r in winners),
        matched_rule_ids=tuple(r.id for r in enforcing),
        reason=lead.reason or next((r.reason for r in winners if r.reason), _PHRASES[verdict]),
        snapshot_id=snapshot_id,
        constraints=constraints,
        tier=lead.tier,
        route=lead.route
        or next((r.route for r in winners if r.tier == lead.tier and r.route), None),
        rollback=next((r.rollback for r in winners if r.rollback), None),
        shadow=shadow,
        notify=verdict <= Verdict.ALLOW_WITH_CONSTRAINTS and any(r.notify for r in winners),
    )


def in_shadow_mode(would: Decision, matched: tuple[tuple[str, Verdict], ...]) -> Decision:
    """What a policy in `mode: shadow` answers: allow, recording what it would have decided."""
    return Decision(
        verdict=Verdict.ALLOW,
        reason=f"the policy is in shadow mode; it would have decided {would.verdict}: "
        f"{would.reason}",
        snapshot_id=would.snapshot_id,
        shadow=matched,
    )
