"""Checks across sections of a policy, each pinned to the key it is about.

These run once the schema is valid. They are kept out of pydantic's `model_validator` because a
validator can only point at the model it sits on, and the person fixing the file needs the line
of the rule (or route, or tier) that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network

from gateway.policy.classify import MCP_SESSION, UNCLASSIFIED
from gateway.policy.decide import RESERVED_RULE_IDS
from gateway.policy.globs import Glob
from gateway.policy.params import parse_source
from gateway.policy.paths import parse_path_pattern
from gateway.policy.schema import (
    ActionEntry,
    PolicyModel,
    ResponseLists,
    ResponseOverride,
    Rule,
    scan_tier,
)
from gateway.policy.verdict import Verdict
from gateway.scan.entities import TIERS

Found = tuple[tuple[str | int, ...], str]
"""A key path in the file and the sentence about it."""


def _listing(items: object) -> str:
    names = [str(i) for i in items]  # type: ignore[attr-defined]
    return ", ".join(names) if names else "(none defined)"


def errors(model: PolicyModel) -> list[Found]:
    """Everything that makes the policy unusable."""
    return [*_actions(model), *_rules(model), *_approvals(model), *_responses(model),
            *_triggers(model), *_agent_addresses(model)]


def _actions(model: PolicyModel) -> Iterator[Found]:
    first: dict[str, int] = {}
    for i, entry in enumerate(model.actions):
        if entry.type in first:
            yield (
                ("actions", i, "type"),
                (
                    f"duplicate action type `{entry.type}` (also actions[{first[entry.type]}]); "
                    "give each entry its own type"
                ),
            )
        first.setdefault(entry.type, i)
        yield from _action_entry(i, entry)


def _action_entry(i: int, entry: ActionEntry) -> Iterator[Found]:
    if "{tool}" in entry.type and entry.match.mcp != "tools/call":
        yield (
            ("actions", i, "type"),
            (
                "`{tool}` is only known for MCP tool calls; add `mcp: tools/call` to match "
                "or remove the placeholder"
            ),
        )
    names = parse_path_pattern(entry.match.path).names if entry.match.path else ()
    for name, text in entry.params.items():
        source = parse_source(text)
        if source.kind == "mcp" and entry.match.mcp is None:
            yield (
                ("actions", i, "params", name),
                (
                    f"`{text}` reads an MCP request, but this entry has no `match.mcp`; add "
                    "`mcp: tools/call` to match"
                ),
            )
        if source.kind == "path" and source.name not in names:
            yield (
                ("actions", i, "params", name),
                (
                    f"`{text}` names no `{{{source.name}}}` segment of match.path; add it to the "
                    "path, like `/items/{id}`"
                ),
            )


class Producers:
    """Which `actions:` entries can produce an exact action type (templates included).

    Templates are bucketed by their literal prefix, as rules are in `decide.RuleIndex`, so
    checking 10,000 rules does not compare each against every template."""

    def __init__(self, model: PolicyModel) -> None:
        self._exact: dict[str, list[ActionEntry]] = {}
        self._templates: dict[str, list[tuple[Glob, ActionEntry]]] = {}
        for entry in model.actions:
            glob = Glob(entry.type.replace("{tool}", "*"))
            if glob.is_literal:
                self._exact.setdefault(entry.type, []).append(entry)
            else:
                self._templates.setdefault(glob.prefix, []).append((glob, entry))

    def of(self, action_type: str) -> list[ActionEntry]:
        found = list(self._exact.get(action_type, ()))
        for end in range(len(action_type) + 1):
            for glob, entry in self._templates.get(action_type[:end], ()):
                if glob.matches(action_type):
                    found.append(entry)
        return found


def _rules(model: PolicyModel) -> Iterator[Found]:
    first: dict[str, int] = {}
    known = Producers(model)
    if model.default is Verdict.ALLOW_WITH_CONSTRAINTS:
        yield (
            ("default",),
            ("the default cannot be allow_with_constraints (it has no constraints); use deny"),
        )
    for i, rule in enumerate(model.rules):
        if rule.id in RESERVED_RULE_IDS:
            yield (
                ("rules", i, "id"),
                (f"rule id `{rule.id}` is reserved for Gatehouse's own decisions; choose another"),
            )
        if rule.id in first:
            yield (
                ("rules", i, "id"),
                (
                    f"duplicate rule id `{rule.id}` (also rules[{first[rule.id]}]); "
                    "give each rule its own id"
                ),
            )
        first.setdefault(rule.id, i)
        yield from _rule_decision(model, i, rule)
        yield from _rule_actions(known, i, rule)
        yield from _rule_entities(model, i, rule)


def _rule_decision(model: PolicyModel, i: int, rule: Rule) -> Iterator[Found]:
    approval = rule.decision is Verdict.REQUIRE_APPROVAL
    tiers = model.approvals.tiers
    groups = model.approvals.groups
    if rule.constraints is not None and rule.decision is not Verdict.ALLOW_WITH_CONSTRAINTS:
        yield (
            ("rules", i, "constraints"),
            (
                f"constraints only apply to allow_with_constraints, not `{rule.decision}`; "
                "change the decision or remove the constraints"
            ),
        )
    if rule.constraints is None and rule.decision is Verdict.ALLOW_WITH_CONSTRAINTS:
        yield (
            ("rules", i, "decision"),
            (
                "allow_with_constraints needs `constraints`; add `constraints: "
                "{timeout_seconds: 30}` or use allow"
            ),
        )
    if rule.notify and rule.decision not in (Verdict.ALLOW, Verdict.ALLOW_WITH_CONSTRAINTS):
        yield (
            ("rules", i, "notify"),
            (
                f"notify only applies to allow and allow_with_constraints, not "
                f"`{rule.decision}`; remove it (reviewers already hear of held calls) or "
                "allow the call"
            ),
        )
    for key in ("tier", "route"):
        if getattr(rule, key) is not None and not approval:
            yield (
                ("rules", i, key),
                (f"{key} only applies to require_approval, not `{rule.decision}`; remove it"),
            )
    if not approval:
        return
    tier = rule.tier or 1
    if tier not in tiers:
        where = ("rules", i, "tier") if rule.tier else ("rules", i)
        yield (
            where,
            (
                f"unknown tier `{tier}`{'' if rule.tier else ' (the default)'}; "
                f"add it under approvals.tiers or use one of {_listing(tiers)}"
            ),
        )
    if rule.route is not None and rule.route not in groups:
        yield (
            ("rules", i, "route"),
            (
                f"unknown route `{rule.route}`; add it under approvals.groups or use one of "
                f"{_listing(groups)}"
            ),
        )
    elif rule.route is not None and tier in tiers:
        members, needed = len(set(groups[rule.route])), tiers[tier].approvals
        if members < needed:
            yield (
                ("rules", i, "route"),
                (
                    f"group `{rule.route}` has {members} reviewer(s) but tier {tier} needs "
                    f"{needed} distinct approvals; add reviewers or lower the tier"
                ),
            )
        elif members < needed + 1 and model.approvals.queue.second_review_rate > 0:
            yield (
                ("rules", i, "route"),
                (
                    f"group `{rule.route}` has {members} reviewer(s), but a sampled second "
                    f"review of tier {tier} needs {needed + 1} distinct approvals; add a "
                    "reviewer or set approvals.queue.second_review_rate to 0"
                ),
            )


def _rule_actions(producers: Producers, i: int, rule: Rule) -> Iterator[Found]:
    """Exact action types must exist, and conditions must name params those actions extract;
    a typo here would silently switch a rule off."""
    for j, pattern in enumerate(rule.when.action or ()):
        if "*" in pattern or pattern in (UNCLASSIFIED, MCP_SESSION):
            continue
        entries = producers.of(pattern)
        if not entries:
            yield (
                ("rules", i, "when", "action", j),
                (f"no entry under actions produces `{pattern}`; check the spelling or add one"),
            )
            continue
        known = {name for e in entries for name in e.params}
        for name in rule.when.params:
            if name not in known:
                yield (
                    ("rules", i, "when", "params", name),
                    (f"action `{pattern}` has no param `{name}`; use one of {_listing(known)}"),
                )


def _rule_entities(model: PolicyModel, i: int, rule: Rule) -> Iterator[Found]:
    """`request_contains` must name entity types a scan can report; a typo (`US_SNN`) would
    switch a deny rule off for every scanned request."""
    custom = [r.name for r in model.responses.recognizers]
    for j, entity in enumerate(rule.when.request_contains or ()):
        if entity not in TIERS["ner"] and entity not in custom:
            where = ("rules", i, "when", "request_contains", j)
            yield _unknown_entity(where, entity, "ner", custom)


def _approvals(model: PolicyModel) -> Iterator[Found]:
    approvals = model.approvals
    if approvals.on_timeout == "allow":
        yield (
            ("approvals", "on_timeout"),
            (
                "on_timeout `allow` is only allowed on a low tier; set `on_timeout: allow` under "
                "that tier in approvals.tiers"
            ),
        )
    for number, tier in approvals.tiers.items():
        if tier.on_timeout == "allow" and (tier.approvals > 1 or tier.confirm_phrase):
            yield (
                ("approvals", "tiers", number, "on_timeout"),
                (
                    f"on_timeout `allow` is only allowed on a low tier (one approval, no "
                    f"confirm_phrase); tier {number} is not one"
                ),
            )
    timeouts = [approvals.on_timeout, *(t.on_timeout for t in approvals.tiers.values())]
    if "escalate" in timeouts and not approvals.escalation:
        yield (
            ("approvals", "escalation"),
            ("on_timeout `escalate` needs an escalation chain; add `escalation: [group, ...]`"),
        )
    queue = approvals.queue
    if (
        queue.target_median_wait is not None
        and queue.target_p95_wait is not None
        and queue.target_p95_wait < queue.target_median_wait
    ):
        yield (
            ("approvals", "queue", "target_p95_wait"),
            (
                "target_p95_wait is shorter than target_median_wait, which no queue can meet; "
                "raise it to at least the median target"
            ),
        )
    for j, group in enumerate(approvals.escalation):
        if group not in approvals.groups:
            yield (
                ("approvals", "escalation", j),
                (
                    f"unknown group `{group}`; add it under approvals.groups or use one of "
                    f"{_listing(approvals.groups)}"
                ),
            )


def _responses(model: PolicyModel) -> Iterator[Found]:
    responses = model.responses
    custom = [r.name for r in responses.recognizers]
    for j, name in enumerate(custom):
        if name in TIERS["ner"] or name in custom[:j]:
            where = "a built-in entity type" if name in TIERS["ner"] else "defined twice"
            yield (("responses", "recognizers", j, "name"), f"`{name}` is {where}; rename it")
    tier = scan_tier(responses)
    known = TIERS[tier] | set(custom)
    sections: list[tuple[tuple[str | int, ...], ResponseLists | ResponseOverride]] = [
        (("responses",), responses),
        *((("responses", "overrides", i), o) for i, o in enumerate(responses.overrides)),
    ]
    for path, lists in sections:
        own = isinstance(lists, ResponseOverride) and lists.detect is not None
        detect = lists.detect if own else responses.detect
        where = f"responses.overrides[{path[-1]}].detect" if own else "responses.detect"
        for key in ("detect", "redact", "quarantine"):
            for j, entity in enumerate(getattr(lists, key) or ()):
                if entity not in known:
                    yield (*_unknown_entity(path + (key, j), entity, tier, custom),)
                elif key != "detect" and entity not in detect:
                    yield (
                        path + (key, j),
                        f"`{entity}` is not in {where}, so it is never found; add it there",
                    )


def _unknown_entity(
    path: tuple[str | int, ...], entity: str, tier: str, custom: list[str]
) -> Found:
    if tier == "patterns" and entity in TIERS["ner"]:
        return path, f"`{entity}` is found only by the NER model; set `responses.tier: ner`"
    return path, (
        f"unknown entity type `{entity}`; use one of {_listing(sorted(TIERS[tier]))}, or define "
        "it under responses.recognizers"
    )


def _triggers(model: PolicyModel) -> Iterator[Found]:
    first: dict[str, int] = {}
    looked_for = any(rule.when.request_contains for rule in model.rules)
    for i, trigger in enumerate(model.triggers):
        if trigger.id in first:
            yield (("triggers", i, "id"), f"duplicate trigger id `{trigger.id}` (also "
                                          f"triggers[{first[trigger.id]}]); give each its own")
        first.setdefault(trigger.id, i)
        if "dlp" in trigger.count and not looked_for:
            yield (("triggers", i, "count"),
                   "`dlp` counts requests carrying an entity that a rule's `request_contains` "
                   "looks for, and no rule has `request_contains`, so it could never fire; add "
                   "such a rule or drop `dlp`")


def _agent_addresses(model: PolicyModel) -> Iterator[Found]:
    """In transparent mode the client address is the identity, so it must name one agent."""
    seen: list[tuple[IPv4Network | IPv6Network, str, int]] = []
    for name, agent in model.agents.items():
        for i, text in enumerate(agent.addresses):
            network = ip_network(text)
            for other, owner, j in seen:
                if owner != name and network.overlaps(other):  # type: ignore[arg-type]
                    yield (("agents", name, "addresses", i),
                           f"`{network}` overlaps `{other}` of agent `{owner}` "
                           f"(agents.{owner}.addresses[{j}]); an address may name only one "
                           "agent, so narrow one of the ranges")
            seen.append((network, name, i))


def warnings(model: PolicyModel, now: datetime | None = None) -> list[Found]:
    """Things that load but are probably not what the author meant."""
    now = now or datetime.now(UTC)
    found: list[Found] = []
    if model.default is not Verdict.DENY:
        message = f"the default is `{model.default}`; calls that no rule matches are not denied"
        found.append((("default",), message))
    if model.mode == "shadow":
        message = "the policy is in shadow mode; none of its decisions are enforced"
        found.append((("mode",), message))
    for i, rule in enumerate(model.rules):
        if rule.expires is not None and rule.expires <= now:
            found.append((("rules", i, "expires"), f"rule `{rule.id}` has expired; remove it"))
    return found
