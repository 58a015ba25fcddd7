"""Expectation cases (`gatehouse test`): a request and the decision the policy must give it.

Like OPA's policy tests, each case is data: a request written as a URL plus a body, and the
expected verdict with, optionally, the rules, action, params, tier, route, constraints, reason
and shadow rules. A case fails when any expectation it states differs from what `evaluate` does.

`gatehouse test` scans nothing: a case states what the gateway's scan would find in its request
(`request_contains: [US_SSN]`, or `unscanned`), and by default it found nothing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from gateway.call import Action, Call
from gateway.policy.errors import PolicyError, Problem
from gateway.policy.evaluate import evaluate
from gateway.policy.problems import problems_from
from gateway.policy.schema import AwareTime, Entity, Method, RuleConstraints, StrictModel
from gateway.policy.snapshot import Policy
from gateway.policy.verdict import Decision, Verdict
from gateway.policy.yamldoc import locate, parse, read

Pairs = list[tuple[str, str]]


def _pairs(value: object) -> object:
    """A mapping is the easy way to write fields; a list of pairs allows a field twice."""
    if isinstance(value, dict):
        return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()]
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"`{value}` is not an http(s) URL; write it like `https://host/path`")
    _ = parts.port  # raises ValueError for a bad port
    return value


UNSCANNED = "unscanned"


def _found(value: object) -> object:
    """`unscanned` means the scan failed (None); one entity type may be written bare."""
    if value is None:
        raise ValueError(f"write `[]` for a request the scan found clean, or `{UNSCANNED}`")
    if value == UNSCANNED:
        return None
    return [value] if isinstance(value, str) else value


class McpRequest(StrictModel):
    method: str = Field("tools/call", description="JSON-RPC method.")
    tool: str | None = Field(None, description="Tool name (params.name) for tools/call.")
    arguments: dict[str, JsonValue] = Field(
        default_factory=dict, description="Tool arguments (params.arguments)."
    )


class RequestSpec(StrictModel):
    method: Method = Field("GET", description="HTTP method.")
    url: Annotated[str, AfterValidator(_url)] = Field(description="Full URL with query.")
    agent: str = Field("anonymous", description="The calling agent.")
    headers: Annotated[Pairs, BeforeValidator(_pairs)] = Field(
        default_factory=list, description="Request headers (mapping, or list of pairs)."
    )
    json_body: JsonValue = Field(None, alias="json", description="A JSON body.")
    form: Annotated[Pairs | None, BeforeValidator(_pairs)] = Field(
        None, description="A form-encoded body (mapping, or list of pairs for duplicates)."
    )
    body: str | None = Field(None, description="A raw body, sent as is.")
    mcp: McpRequest | None = Field(None, description="An MCP JSON-RPC request body.")

    @model_validator(mode="after")
    def _one_body(self) -> RequestSpec:
        given = [k for k in ("json_body", "form", "body", "mcp") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError("give at most one of json, form, body and mcp")
        return self

    def call(self) -> Call:
        parts = urlsplit(self.url)
        host = (parts.hostname or "").rstrip(".")
        host = host if host.isascii() else host.encode("idna").decode("ascii")
        headers = [(k.lower(), v) for k, v in self.headers]
        body, content_type = self._body()
        if content_type and not any(k == "content-type" for k, _ in headers):
            headers.append(("content-type", content_type))
        return Call(
            method=self.method,
            scheme=parts.scheme,
            host=host.lower(),
            port=parts.port or (443 if parts.scheme == "https" else 80),
            path=parts.path or "/",
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            headers=tuple(headers),
            body=body,
            agent=self.agent,
        )

    def _body(self) -> tuple[bytes, str | None]:
        if self.json_body is not None:
            return json.dumps(self.json_body).encode(), "application/json"
        if self.form is not None:
            return urlencode(self.form).encode(), "application/x-www-form-urlencoded"
        if self.mcp is not None:
            message: dict[str, object] = {"jsonrpc": "2.0", "id": 1, "method": self.mcp.method}
            if self.mcp.tool is not None:
                message["params"] = {"name": self.mcp.tool, "arguments": self.mcp.arguments}
            return json.dumps(message).encode(), "application/json"
        return (self.body or "").encode(), None


class Expect(StrictModel):
    decision: Verdict = Field(description="The verdict.")
    rules: list[str] | None = Field(None, description="Exactly the rules that won.")
    matched: list[str] | None = Field(None, description="Exactly the enforcing rules matched.")
    action: str | None = Field(None, description="The action type.")
    params: dict[str, JsonValue] | None = Field(None, description="Exactly the action params.")
    tier: int | None = Field(None, description="The approval tier.")
    route: str | None = Field(None, description="The reviewer group.")
    reason: str | None = Field(None, description="The reason, exactly.")
    constraints: RuleConstraints | None = Field(None, description="Exactly these constraints.")
    shadow: dict[str, Verdict] | None = Field(
        None, description="Shadow rules that matched, with what they would decide."
    )


class CaseSpec(StrictModel):
    name: str = Field(description="What the case shows, in a few words.")
    request: RequestSpec = Field(description="The request.")
    now: AwareTime | None = Field(None, description="The clock for this case (default: now).")
    request_contains: Annotated[list[Entity] | None, BeforeValidator(_found)] = Field(
        default_factory=list,
        description="Entity types the gateway's scan would find in the request (`[US_SSN]`), "
        f"or `{UNSCANNED}` for a request it could not scan; by default it found none.",
    )
    expect: Expect = Field(description="What the policy must decide.")


class CasesFile(StrictModel):
    now: AwareTime | None = Field(None, description="The clock for every case (default: now).")
    cases: list[CaseSpec] = Field(min_length=1, description="The cases.")


@dataclass(frozen=True, slots=True)
class Case:
    """One loaded case: where it is written, the call it makes and what it expects."""

    name: str
    where: str
    call: Call
    now: datetime | None
    expect: Expect


def load_cases(path: str | Path) -> list[Case]:
    """Load a cases file; PolicyError names every problem (same format as policy errors)."""
    return load_cases_text(read(path), str(path))


def load_cases_text(text: str, source: str = "<cases>") -> list[Case]:
    doc = parse(text, source, empty_hint="add `cases:` with at least one case")
    try:
        spec = CasesFile.model_validate(doc.data)
    except ValidationError as err:
        raise PolicyError(problems_from(doc, CasesFile, err)) from None
    cases: list[Case] = []
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, case in enumerate(spec.cases):
        line, _ = locate(doc.node, ("cases", i))
        if case.name in seen:
            problems.append(doc.problem(("cases", i, "name"), f"duplicate case `{case.name}`"))
        seen.add(case.name)
        found = case.request_contains
        call = dataclasses.replace(
            case.request.call(), request_entities=None if found is None else frozenset(found)
        )
        cases.append(Case(case.name, f"{source}:{line}", call, case.now or spec.now, case.expect))
    if problems:
        raise PolicyError(problems)
    return cases


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    action: Action
    decision: Decision
    mismatches: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class CasesReport:
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> list[CaseResult]:
        return [r for r in self.results if r.passed]

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def format(self) -> str:
        """One line per case, the differences under each failure, and a total."""
        lines: list[str] = []
        for result in self.results:
            case = result.case
            if result.passed:
                lines.append(f"PASS  {case.name}")
                continue
            lines.append(f"FAIL  {case.name}  ({case.where})")
            lines += [f"        {m}" for m in result.mismatches]
        lines.append(f"{len(self.passed)} passed, {len(self.failed)} failed")
        return "\n".join(lines)


def run_cases(policy: Policy, cases: list[Case], now: datetime | None = None) -> CasesReport:
    """Evaluate every case against the policy and compare with its expectations."""
    clock = now or datetime.now(UTC)
    results = []
    for case in cases:
        action, decision = evaluate(policy, case.call, case.now or clock)
        mismatches = tuple(_compare(case.expect, action, decision))
        results.append(CaseResult(case, action, decision, mismatches))
    return CasesReport(tuple(results))


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return "none" if value is None else f"`{value}`"


def _limits(limits: object) -> dict[str, object]:
    """Constraints (decided or expected) as the limits they set, for comparing and showing."""
    keys = ("timeout_seconds", "max_request_body_bytes")
    return {k: getattr(limits, k) for k in keys if getattr(limits, k) is not None}


def _compare(expect: Expect, action: Action, decision: Decision) -> list[str]:
    got: dict[str, object] = {
        "decision": decision.verdict,
        "rules": list(decision.rule_ids),
        "matched": list(decision.matched_rule_ids),
        "action": action.type,
        "params": action.params,
        "tier": decision.tier,
        "route": decision.route,
        "reason": decision.reason,
        "constraints": _limits(decision.constraints),
        "shadow": dict(decision.shadow),
    }
    wanted: dict[str, object] = {
        key: getattr(expect, key) for key in got if key in expect.model_fields_set
    }
    if "constraints" in wanted:
        wanted["constraints"] = _limits(expect.constraints or RuleConstraints())
    return [
        f"{key}: expected {_show(want)}, got {_show(got[key])}"
        for key, want in wanted.items()
        if want != got[key]
    ]
