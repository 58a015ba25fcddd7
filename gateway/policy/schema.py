"""The policy file's schema: strict pydantic models that document every key.

Unknown keys are errors (`extra="forbid"`), so a typo never silently weakens a policy. Checks
that involve one value live here; checks across sections (duplicate ids, routes, tiers) live in
`checks.py`, where each problem can be pinned to its own line.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

from gateway.policy.errors import describe
from gateway.policy.globs import Glob
from gateway.policy.hosts import parse_host_pattern
from gateway.policy.params import parse_source
from gateway.policy.paths import parse_path_pattern
from gateway.policy.verdict import Verdict
from gateway.scan.entities import NER_ENTITIES


def _pattern(regex: str, what: str, example: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{what} `{value}` is not valid; write it like `{example}`")
        return value

    return AfterValidator(check)


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _host(value: str) -> str:
    return str(parse_host_pattern(value))


def _method(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{1,20}", value):
        raise ValueError(f"`{value}` is not an HTTP method; write it like `POST`")
    return value.upper()


def _source(value: str) -> str:
    parse_source(value)
    return value


def _path(value: str) -> str:
    parse_path_pattern(value)
    return value


def _number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(
            f"expected a number, got {describe(value)}; write it without quotes, like `100`"
        )
    return value


def _scalar(value: object) -> object:
    if value is None or isinstance(value, dict | list):
        raise ValueError("expected a single value (text, a number, true or false)")
    return value


_DURATION = re.compile(r"([0-9]{1,9})(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    """`30s`, `20m`, `4h`, `7d`, or a whole number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"expected a duration like `30s`, `20m`, `4h` or `7d`, got {describe(value)}"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _aware(value: object) -> object:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(
            f"expected a date and time with a zone, like `2030-01-31T18:00:00Z`, "
            f"got {describe(value)}"
        )
    return value


Name = Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}", "name", "ops-approvers")]
Tag = Annotated[str, _pattern(r"[a-z0-9][a-z0-9_.-]{0,63}", "tag", "write")]
ParamName = Annotated[str, _pattern(r"[A-Za-z_][A-Za-z0-9_]{0,63}", "param name", "amount_cents")]
Entity = Annotated[str, _pattern(r"[A-Z][A-Z0-9_]{0,63}", "entity", "EMAIL_ADDRESS")]
ActionType = Annotated[
    str, _pattern(r"(?:[A-Za-z0-9_.:/-]|\{tool\})+", "action type", "payments.refund")
]
ActionGlob = Annotated[str, _pattern(r"[A-Za-z0-9_.:/*-]+", "action pattern", "mcp.read_*")]
AgentGlob = Annotated[str, _pattern(r"[A-Za-z0-9_.@*-]+", "agent pattern", "support-*")]
HostGlob = Annotated[str, AfterValidator(_host)]
PathText = Annotated[str, AfterValidator(_path)]
Method = Annotated[str, AfterValidator(_method)]
Number = Annotated[int | float, BeforeValidator(_number)]
Scalar = Annotated[str | int | float | bool, BeforeValidator(_scalar)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
AwareTime = Annotated[datetime, BeforeValidator(_aware)]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Mode = Literal["enforce", "shadow"]
OnTimeout = Literal["deny", "escalate", "allow"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Egress(StrictModel):
    allow: list[HostGlob] = Field(
        default_factory=list,
        description="Hosts agents may reach at all: `api.example.com`, `*.example.com` (any "
        "subdomain, not the domain itself), optionally `:port` to allow that port only.",
    )
    private_networks: Literal["allow", "deny"] = Field(
        "deny",
        description="Whether addresses in loopback, private, link-local, metadata, CGNAT and "
        "ULA ranges may be dialled (checked after DNS resolution).",
    )


class Match(StrictModel):
    method: Annotated[list[Method] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="HTTP method or list of methods (case-insensitive); any when absent."
    )
    host: Annotated[list[HostGlob] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="Host pattern or list of them, same syntax as egress.allow."
    )
    path: PathText | None = Field(
        None,
        description="Path after normalisation: literal segments, `{name}` (one segment, "
        "available as `path:name`), `*` within a segment, `**` as the last segment.",
    )
    mcp: str | None = Field(
        None,
        description="JSON-RPC method of an MCP request body, such as `tools/call`; a batch "
        "(JSON array) never matches.",
    )


class ActionEntry(StrictModel):
    type: ActionType = Field(
        description="The action type, such as `payments.refund`; `{tool}` is replaced by the "
        "MCP tool name when `match.mcp` is `tools/call`."
    )
    match: Match = Field(description="What a request must look like; every key must hold.")
    tags: list[Tag] = Field(default_factory=list, description="Labels rules can select on.")
    params: dict[ParamName, Annotated[str, AfterValidator(_source)]] = Field(
        default_factory=dict,
        description="Named values pulled from the request: `json:$.a.b[0]`, `form:field`, "
        "`query:name`, `path:name`, `header:name`, `mcp:arguments.x`.",
    )


class Condition(StrictModel):
    lt: Number | None = Field(None, description="Less than this number.")
    lte: Number | None = Field(None, description="At most this number.")
    gt: Number | None = Field(None, description="Greater than this number.")
    gte: Number | None = Field(None, description="At least this number.")
    eq: Scalar | None = Field(None, description="Equal to this value (numbers compare exactly).")
    ne: Scalar | None = Field(None, description="Present and not equal to this value.")
    in_: list[Scalar] | None = Field(None, alias="in", description="Equal to one of these.")
    not_in: list[Scalar] | None = Field(None, description="Present and equal to none of these.")
    glob: str | None = Field(
        None, description="Text matching this `*` glob, ignoring case (`*@example.com`)."
    )
    exists: Bool | None = Field(None, description="true: the param is present; false: absent.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        """A bare value means `eq`: `currency: usd` is `currency: {eq: usd}`."""
        if isinstance(value, list):
            raise ValueError("a list is ambiguous here; write `{in: [...]}` to accept any of them")
        return value if isinstance(value, dict) else {"eq": value}

    @model_validator(mode="after")
    def _sensible(self) -> Condition:
        tests = [k for k, v in self.model_dump(by_alias=True).items() if v is not None]
        if not tests:
            raise ValueError(
                "empty condition; use one of lt, lte, gt, gte, eq, ne, in, not_in, glob, exists"
            )
        if self.exists is False and len(tests) > 1:
            raise ValueError("`exists: false` cannot be combined with other tests; remove them")
        return self


class When(StrictModel):
    action: Annotated[list[ActionGlob] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="Action type or `*` glob, or a list of them; any action when absent."
    )
    params: dict[ParamName, Condition] = Field(
        default_factory=dict,
        description="Conditions on the action's params (all must hold); a bare value means eq.",
    )
    agent: Annotated[list[AgentGlob] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="Agent name or `*` glob, or a list of them."
    )
    tenant: Annotated[list[Name] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="Tenant of the agent (from `agents:`), or a list of them."
    )
    tags: list[Tag] = Field(default_factory=list, description="Tags the action must all carry.")
    host: Annotated[list[HostGlob] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="Destination host pattern or list of them."
    )
    method: Annotated[list[Method] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="HTTP method or list of methods."
    )
    request_contains: Annotated[list[Entity] | None, BeforeValidator(_one_or_many)] = Field(
        None,
        min_length=1,
        description="Entity type or list of them (`US_SSN`, `CREDIT_CARD`): the rule applies "
        "when the gateway's scan of the request (query string and decoded body) finds any of "
        "them. A request that could not be scanned counts as containing them for deny and "
        "require_approval rules, and as not containing them for allow rules.",
    )
    retries: Condition | None = Field(
        None, description="On how many times the agent sent this exact request in the last "
        "10 minutes before this one, e.g. `{gte: 3}`.")
    anomaly: Condition | None = Field(
        None, description="On how unusual the call is for the agent, 0 to 1 (its rate against "
        "its own last hour, the novelty of the action type), e.g. `{gte: 0.8}`.")
    confidence: Condition | None = Field(
        None, description="On the agent's own `X-Agent-Confidence` header (0 to 1), e.g. "
        "`{lt: 0.5}`; does not hold when the header is absent.")


class RuleConstraints(StrictModel):
    timeout_seconds: Annotated[float, Strict()] | None = Field(
        None, gt=0, allow_inf_nan=False, description="Upstream timeout for the call."
    )
    max_request_body_bytes: Int | None = Field(
        None, ge=0, description="Largest request body that may be forwarded."
    )


class Rule(StrictModel):
    id: Name = Field(description="Unique id, recorded with every decision it takes part in.")
    when: When = Field(description="What the rule applies to; `{}` applies to every call.")
    decision: Verdict = Field(description="What the rule decides when it applies.")
    tier: Int | None = Field(
        None, ge=1, description="Approval tier (require_approval only); tier 1 when absent."
    )
    route: Name | None = Field(
        None, description="Reviewer group from approvals.groups (require_approval only)."
    )
    reason: str | None = Field(None, description="Shown to the agent and the reviewer.")
    rollback: str | None = Field(None, description="How to undo the action, for reviewers.")
    constraints: RuleConstraints | None = Field(
        None, description="Limits for allow_with_constraints."
    )
    mode: Mode = Field(
        "enforce", description="`shadow`: record what the rule would decide without enforcing it."
    )
    expires: AwareTime | None = Field(
        None, description="After this moment the rule no longer applies (temporary exceptions)."
    )
    notify: Bool = Field(
        False,
        description="A pre-approved playbook action: the call passes and the reviewers' "
        "webhooks are told (agent, action, rule; never the body or params). allow and "
        "allow_with_constraints only.",
    )


class Tier(StrictModel):
    approvals: Int = Field(1, ge=1, description="Distinct reviewers who must approve.")
    min_review_seconds: Int = Field(
        0, ge=0, description="Time each reviewer must have had the item open before approving."
    )
    reason_required: Bool = Field(False, description="Whether the reviewer must give a reason.")
    confirm_phrase: Bool = Field(False, description="Whether a typed confirmation is required.")
    on_timeout: OnTimeout | None = Field(
        None,
        description="Overrides approvals.on_timeout for this tier; `allow` only here, and only "
        "on a low tier (one approval, no confirm phrase).",
    )


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(
            f"expected a share from 0 to 1, got {describe(value)}; write it like `0.05`"
        )
    return float(value)


Rate = Annotated[float, BeforeValidator(_rate)]


class Queue(StrictModel):
    target_median_wait: Duration | None = Field(
        None,
        description="Target for the median time from hold to decision (last 24 h), reported "
        "by /v1/queue/stats as met or not.",
    )
    target_p95_wait: Duration | None = Field(
        None, description="Target for the 95th percentile of the same waits."
    )
    max_open_per_reviewer: Int | None = Field(
        None,
        ge=1,
        description="New items are assigned round-robin to the routed group's member with the "
        "fewest open assigned items below this cap; with everyone at the cap an item stays "
        "unassigned (any member may still vote). No cap when absent.",
    )
    cooldown_after_approvals: Int | None = Field(
        None,
        ge=1,
        description="A reviewer whose approvals in the hour up to their latest one reach this "
        "many is refused further approvals until `cooldown` after that latest one (denials "
        "are never refused). No limit when absent.",
    )
    cooldown: Duration = Field(
        timedelta(minutes=15), description="How long such a reviewer cools down."
    )
    second_review_rate: Rate = Field(
        0.0,
        description="The share of approvals, drawn at random, that need one more distinct "
        "approval before the call goes out (0 to 1).",
    )


class Approvals(StrictModel):
    hold_seconds: Int = Field(
        30, ge=0, description="How long the agent's connection is held before 503 + Retry-After."
    )
    expire_after: Duration = Field(
        timedelta(hours=4), description="A pending call not decided by then expires (refused)."
    )
    on_timeout: OnTimeout = Field(
        "deny",
        description="What expiry means: deny, or escalate along `escalation` (the next group "
        "gets a fresh expire_after; with no group left the item expires).",
    )
    escalate_after: Duration | None = Field(
        None,
        description="When an undecided item moves to the next group in `escalation` (counted "
        "again from each move); the groups that had it before may still vote.",
    )
    escalation: list[Name] = Field(
        default_factory=list, description="Groups an undecided item escalates through, in order."
    )
    tiers: dict[Annotated[int, Strict(), Field(ge=1)], Tier] = Field(
        default_factory=lambda: {1: Tier()}, description="Approval tiers by number."
    )
    groups: dict[Name, list[Name]] = Field(
        default_factory=dict, description="Reviewer groups: name -> reviewer names."
    )
    queue: Queue = Field(
        default_factory=Queue,
        description="Queue health and reviewer fatigue: wait targets, assignment cap, "
        "cooldown, sampled second review.",
    )


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"not a regular expression ({e}); write it like `ACME-[0-9]{{8}}`") from e
    return value


Regex = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_regex)]
BinaryVerdict = Literal["allow", "quarantine"]


class Recognizer(StrictModel):
    name: Entity = Field(description="Entity type it reports, such as `ACME_ACCOUNT_ID`.")
    regex: Regex = Field(description="What the entity looks like (Python regular expression).")
    score: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.8, description="Confidence of a match, 0 to 1 (findings below 0.4 are ignored)."
    )
    context: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        description="Words that, near a match, raise its score (as Presidio's context words).",
    )


class ResponseLists(StrictModel):
    detect: list[Entity] = Field(
        default_factory=list, description="Entity types to look for in response bodies."
    )
    redact: list[Entity] = Field(
        default_factory=list, description="Detected entities replaced in place by `<TYPE>`."
    )
    quarantine: list[Entity] = Field(
        default_factory=list, description="Detected entities that hold the whole response."
    )


class ResponseOverride(StrictModel):
    actions: Annotated[list[ActionGlob], BeforeValidator(_one_or_many)] = Field(
        description="Action types or `*` globs this override applies to (first match wins)."
    )
    detect: list[Entity] | None = Field(None, description="Replaces responses.detect.")
    redact: list[Entity] | None = Field(None, description="Replaces responses.redact.")
    quarantine: list[Entity] | None = Field(None, description="Replaces responses.quarantine.")
    binary: BinaryVerdict | None = Field(None, description="Replaces responses.binary.")


class Responses(ResponseLists):
    tier: Literal["patterns", "ner"] | None = Field(
        None,
        description="`patterns` (Presidio's pattern and checksum recognizers) or `ner` (adds "
        "the spaCy model: PERSON, LOCATION, ...). When absent: `ner` if any list names an "
        "entity only the model finds, else `patterns`.",
    )
    skip_actions: list[ActionGlob] = Field(
        default_factory=list, description="Actions whose responses are not scanned."
    )
    binary: BinaryVerdict = Field(
        "allow",
        description="Bodies that are not text (not UTF-8 once decoded): passed, or held.",
    )
    overrides: list[ResponseOverride] = Field(
        default_factory=list, description="Different lists for some actions."
    )
    recognizers: list[Recognizer] = Field(
        default_factory=list, description="Entity types of your own, found by a regex."
    )
    max_body_bytes: Int = Field(
        8 * 1024 * 1024,
        ge=1,
        le=32 * 1024 * 1024,
        description="Largest body scanned (after decompression); a larger one is quarantined.",
    )
    scan_timeout_seconds: Annotated[float, Strict()] | Int = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="Time budget for scanning one body; past it the body is quarantined.",
    )


def scan_tier(responses: Responses) -> Literal["patterns", "ner"]:
    """The tier in effect: the one set, else `ner` only when a list needs the model."""
    if responses.tier is not None:
        return responses.tier
    named = {*responses.detect, *responses.redact, *responses.quarantine}
    for override in responses.overrides:
        for listed in (override.detect, override.redact, override.quarantine):
            named.update(listed or ())
    return "ner" if named & NER_ENTITIES else "patterns"


Keep = Literal["always", "on_hold", "never"]


class EvidenceOverride(StrictModel):
    actions: Annotated[list[ActionGlob], BeforeValidator(_one_or_many)] = Field(
        description="Action types or `*` globs it applies to; the first match wins.")
    keep: Keep = Field(description="Replaces `evidence.keep` for these actions.")


class Evidence(StrictModel):
    keep: Keep = Field(
        "on_hold", description="Which calls' request and response bodies are kept as evidence: "
        "`always`, `on_hold` (calls held for review), or `never`.")
    overrides: list[EvidenceOverride] = Field(
        default_factory=list, description="Per action type: `{actions: payments.*, keep: "
        "always}`.")

    def keep_for(self, action: str) -> str:
        for override in self.overrides:
            if any(Glob(pattern).matches(action) for pattern in override.actions):
                return override.keep
        return self.keep


def _network(value: str) -> str:
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"`{value}` is not an IP address or CIDR range; write it like "
                         "`10.200.0.2` or `10.200.0.0/24`") from None
    if interface.ip != interface.network.network_address:
        raise ValueError(f"`{value}` has host bits set; write the range as `{interface.network}`")
    return str(interface.network)


class Retention(StrictModel):
    evidence: Duration | None = Field(
        None, description="How long kept request and response bodies (`evidence.keep`) stay, "
        "e.g. `90d`; kept for good when absent.")
    documents: Duration | None = Field(
        None, description="How long fetched documents flagged for instruction-like text stay.")


class MandatorySample(StrictModel):
    actions: Annotated[list[ActionGlob], BeforeValidator(_one_or_many)] = Field(
        description="Action types or `*` globs.")
    params: dict[ParamName, Condition] = Field(
        default_factory=dict, description="Conditions on the params (all must hold), e.g. "
        "`{amount_cents: {gte: 100000}}`.")


class Sampling(StrictModel):
    rate: Rate = Field(0.0, description="Share of forwarded calls drawn for a post-execution "
                                        "review, e.g. `0.02`.")
    tag_weights: dict[Tag, Annotated[float, Field(gt=0, le=1000)]] = Field(
        default_factory=dict, description="Multiply the rate for calls carrying a tag, e.g. "
        "`{financial: 5}` (the largest weight of a call's tags applies).")
    first_time: Bool = Field(
        False, description="Always draw an agent's first call of an action type.")
    always: list[MandatorySample] = Field(
        default_factory=list, description="Calls always drawn, e.g. large refunds.")


class AutonomyLevel(StrictModel):
    approval_actions: list[ActionGlob] = Field(
        default_factory=list, description="Action types or globs that need approval at this "
        "level, whatever the rules say.")
    approval_tags: list[Tag] = Field(
        default_factory=list, description="Tags whose calls need approval at this level.")


class Promotion(StrictModel):
    successful_actions: Int = Field(50, ge=0, description="Calls that went out at this level.")
    max_error_rate: Rate = Field(0.05, description="Failed calls over calls that went out.")
    review_period: Duration = Field(timedelta(days=7), description="Time at this level.")


class Autonomy(StrictModel):
    """Graduated autonomy: an agent starts at `default_level`; a person promotes it once the
    criteria hold; a policy violation or an incident demotes it at once."""

    default_level: Int = Field(description="The level of an agent nobody promoted or demoted.")
    levels: dict[Annotated[int, Strict(), Field(ge=0)], AutonomyLevel] = Field(
        description="Level number → what needs approval there (higher: more autonomy).")
    promotion: Promotion = Field(default_factory=Promotion, description="When a promotion "
                                 "may be signed off.")
    demote_above_error_rate: Rate | None = Field(
        None, description="Demote at once when the share of calls that failed at this level "
        "goes above this (once at least `min_calls` went out), e.g. `0.2`.")
    min_calls: Int = Field(20, ge=1, description="Calls at a level before its error rate "
                                                 "can demote.")

    @model_validator(mode="after")
    def _known_default(self) -> Autonomy:
        if self.default_level not in self.levels:
            raise ValueError(f"default_level {self.default_level} is not one of the levels "
                             f"({', '.join(map(str, sorted(self.levels)))})")
        return self


class Agent(StrictModel):
    tenant: Name | None = Field(None, description="The tenant this agent acts for.")
    addresses: list[Annotated[str, Strict(), AfterValidator(_network)]] = Field(
        default_factory=list,
        description="Client addresses (IPs or CIDR ranges) whose calls are this agent's in "
                    "`--mode transparent`, where agents send no credentials.")


Severity = Literal["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
HaltScope = Literal["agent", "action", "none"]
Counted = Literal["denials", "quarantines", "repeats", "calls", "dlp"]


class Trigger(StrictModel):
    """Automatic containment: when one agent's calls show this pattern, halt and open an
    incident, without waiting for a person to notice."""

    id: Name = Field(description="Unique id, named in the halt, the incident and the audit.")
    # `count`, not `on`: YAML reads a bare `on` key as the boolean true
    count: Annotated[list[Counted], BeforeValidator(_one_or_many)] = Field(
        description="What is counted per agent: `denials` (refused by policy or a reviewer), "
                    "`quarantines` (responses held), `repeats` (the same call again: a loop), "
                    "`calls` (every call: a rate ceiling), `dlp` (a request carrying an entity "
                    "a `request_contains` rule looks for).")
    at_least: Int = Field(1, ge=1, description="How many within `within` fire the trigger.")
    within: Duration = Field(timedelta(minutes=1), description="The sliding window, e.g. `1m`.")
    halt: Literal["agent", "action"] = Field(
        "agent", description="Halt the agent, or the action type of the call that fired it.")
    severity: Severity = Field("SEV-3", description="Severity of the incident it opens.")


class SeverityResponse(StrictModel):
    halt: HaltScope = Field(
        description="Containment when an incident of this severity opens: halt the agent, or "
                    "the action type, of the bad call, or `none`.")


def _default_severities() -> dict[str, SeverityResponse]:
    return {"SEV-1": SeverityResponse(halt="agent"), "SEV-2": SeverityResponse(halt="agent"),
            "SEV-3": SeverityResponse(halt="none"), "SEV-4": SeverityResponse(halt="none")}


class Incidents(StrictModel):
    severities: dict[Severity, SeverityResponse] = Field(
        default_factory=_default_severities,
        description="The required response per severity; severities not listed keep their "
                    "default (SEV-1 and SEV-2 halt the agent, SEV-3 and SEV-4 halt nothing).")

    def response(self, severity: str) -> SeverityResponse:
        return self.severities.get(severity) or _default_severities()[severity]


class PolicyModel(StrictModel):
    version: Literal[1] = Field(description="Schema version of the file format.")
    policy: Name = Field(description="The policy's name.")
    revision: Annotated[str, Field(min_length=1)] = Field(
        description="What people call this version; part of the snapshot id."
    )
    description: str | None = Field(None, description="Free text for people.")
    default: Verdict = Field(Verdict.DENY, description="Decision when no rule matches.")
    mode: Mode = Field("enforce", description="`shadow`: record decisions, enforce none.")
    egress: Egress = Field(default_factory=Egress, description="Where agents may connect.")
    actions: list[ActionEntry] = Field(
        default_factory=list, description="How requests become actions (first match wins)."
    )
    rules: list[Rule] = Field(
        default_factory=list, description="Every matching rule applies; the strictest wins."
    )
    approvals: Approvals = Field(default_factory=Approvals, description="How approvals work.")
    responses: Responses = Field(
        default_factory=Responses, description="What happens to response bodies."
    )
    agents: dict[Name, Agent] = Field(default_factory=dict, description="Known agents.")
    triggers: list[Trigger] = Field(
        default_factory=list, description="Automatic containment on patterns of calls.")
    incidents: Incidents = Field(
        default_factory=Incidents, description="What opening an incident does, by severity.")
    evidence: Evidence = Field(
        default_factory=Evidence, description="Which calls' bodies are kept as evidence.")
    sampling: Sampling = Field(
        default_factory=Sampling, description="Post-execution review of forwarded calls.")
    autonomy: Autonomy | None = Field(
        None, description="Per-agent autonomy levels; absent: every agent is judged by the "
        "rules alone.")
    retention: Retention = Field(
        default_factory=Retention, description="How long each class of evidence is kept; "
        "legal holds exempt what they cover (`gatehouse retention sweep`).")
