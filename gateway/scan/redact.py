"""Judge one response body against the policy's `responses` lists, and redact it in place.

Pure logic, no I/O: the caller decodes the body first, then acts on `Result.outcome`
(`quarantine` and `unscannable` both mean "hold the response": never pass what was not scanned).

Choices (each one fails closed):
- JSON is parsed with duplicate keys rejected (`unscannable`): parsers disagree on which value wins,
  so what is scanned and what the agent reads could differ, and re-serialising would drop data.
  Non-finite numbers (`1e400`, `NaN`) and integers beyond 64 bits are `unscannable` too: they
  cannot be written back unchanged. A body that is not JSON at all (an HTML error page labelled
  JSON) is scanned as UTF-8 text instead, and `Result.note` says so; not UTF-8 → `unscannable`.
- Every key, every string and every number is scanned. Numbers are scanned by their decimal text
  (an integral float by its integer digits), so `4111111111111111` is a CREDIT_CARD; a number to
  redact becomes the string `"<TYPE>"` (a number cannot hold a marker, and a made-up number would
  be false data): the shape is kept, the leaf's JSON type changes.
- A redacted key is renamed `<TYPE>`; keys left unchanged keep their names, and a redacted key that
  would collide with another takes the first free `<TYPE>#2`, `<TYPE>#3`, ... so no member is lost.
- Record paths never carry personal data: a key segment is written with every detected span
  masked, whatever the policy does with the body. One record per field, part and entity type,
  with the best score.
- The body returned for `quarantine` is the redacted view (redact and quarantine entities both
  masked): what the quarantine admin API shows; the caller keeps the original as evidence.
- Work is bounded per body (`Limits`); beyond a limit the outcome is `unscannable`.

Judging a body is a generator of steps (`json_steps`, `text_steps`): it yields its scanner when
the texts it collected need scanning, and returns the `Result`. `scan_json` and
`scan_plain_text` drive one body alone; `judge_all` drives several together, so the texts of all
of them go through Presidio in one pass per recognizer and one `nlp.pipe` batch (`scan_texts`
results do not depend on what else is in the batch): the fixed cost of each pass, most of the
NER model's time on small bodies, is paid once per batch instead of once per body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import orjson

from gateway.scan.analyzer import CustomSpec, Tier, custom_specs
from gateway.scan.scan import Finding, scan_texts

ROOT = "response"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Outcome(StrEnum):
    """What happens to the body: delivered as is, delivered redacted, or held."""

    PASS = "pass"
    REDACTED = "redacted"
    QUARANTINE = "quarantine"
    UNSCANNABLE = "unscannable"


class Action(StrEnum):
    """What was done about one entity type in one field (`reported`: detected, left in place)."""

    REDACTED = "redacted"
    QUARANTINED = "quarantined"
    REPORTED = "reported"


class Part(StrEnum):
    """Whether the entity sat in a member's name or in its value."""

    KEY = "key"
    VALUE = "value"


class ResponseRules(Protocol):
    """The parts of the policy's `Responses` model this module reads.

    A `recognizers` attribute (policy-defined entity types, as in `ScanSettings`) is read when
    present, so the policy's `Responses` model and `ScanSettings` both fit.
    """

    detect: Sequence[str]
    redact: Sequence[str]
    quarantine: Sequence[str]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on work per body: distinct texts scanned, their characters, nesting depth, bytes."""

    max_strings: int = 10_000
    max_chars: int = 1_000_000
    max_depth: int = 128
    max_bytes: int = 8 * 1024 * 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Record:
    """One line of the call's audit record: where, which entity type, how sure, what was done."""

    field: str
    reason: str
    score: float
    action: Action
    part: Part = Part.VALUE

    def as_dict(self) -> dict[str, Any]:
        """The audit form, e.g. `{"field": "response.customer.ssn", "reason": "US_SSN", ...}`."""
        return {
            "field": self.field,
            "reason": self.reason,
            "score": self.score,
            "action": str(self.action),
            "part": str(self.part),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The findings in one body and the outcome they add up to under the policy."""

    outcome: Outcome
    records: tuple[Record, ...] = ()

    @classmethod
    def of(cls, records: Sequence[Record]) -> Verdict:
        """Any quarantine entity holds the whole body; otherwise any redaction makes it redacted."""
        actions = {r.action for r in records}
        if Action.QUARANTINED in actions:
            outcome = Outcome.QUARANTINE
        elif Action.REDACTED in actions:
            outcome = Outcome.REDACTED
        else:
            outcome = Outcome.PASS
        return cls(outcome, tuple(records))


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict, the body to deliver or show (None when unscannable) and a note on why."""

    verdict: Verdict
    body: bytes | str | None
    note: str | None = None

    @property
    def outcome(self) -> Outcome:
        """Shortcut for `verdict.outcome`."""
        return self.verdict.outcome

    @property
    def records(self) -> list[dict[str, Any]]:
        """The redaction records in audit form."""
        return [r.as_dict() for r in self.verdict.records]


def _unscannable(note: str) -> Result:
    return Result(Verdict(Outcome.UNSCANNABLE), None, note)


class Unscannable(Exception):
    """Raised inside the walk when a body cannot be judged; becomes an `unscannable` result."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """The policy lists as one lookup: entity type → action (quarantine beats redact)."""

    actions: dict[str, Action]

    @classmethod
    def of(cls, rules: ResponseRules) -> _Plan:
        actions = {e: Action.REPORTED for e in rules.detect}
        actions.update({e: Action.REDACTED for e in rules.redact})
        actions.update({e: Action.QUARANTINED for e in rules.quarantine})
        return cls(actions)

    def masks(self, entity: str) -> bool:
        return self.actions.get(entity) in (Action.REDACTED, Action.QUARANTINED)


def _spans(findings: Sequence[Finding]) -> list[tuple[int, int, str]]:
    """Overlapping findings become one span, labelled by the best-scoring (then widest) finding."""
    spans: list[tuple[int, int, Finding]] = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if spans and f.start < spans[-1][1]:
            start, end, best = spans[-1]
            if (f.score, f.end - f.start) > (best.score, best.end - best.start):
                best = f
            spans[-1] = (start, max(end, f.end), best)
        else:
            spans.append((f.start, f.end, f))
    return [(s, e, best.entity) for s, e, best in spans]


def _mask(text: str, findings: Sequence[Finding]) -> str:
    """Replace each finding's span in the original text by `<TYPE>`."""
    if not findings:
        return text
    out: list[str] = []
    last = 0
    for start, end, entity in _spans(findings):
        out.append(text[last:start])
        out.append(f"<{entity}>")
        last = end
    out.append(text[last:])
    return "".join(out)


def _number_text(value: int | float) -> str:
    """The digits a reader sees: `4111111111111111.0` is scanned as `4111111111111111`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int) else repr(value)


def _key_segment(key: str) -> str:
    return f".{key}" if _IDENTIFIER.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


class _Scanner:
    """Scans each distinct text once per body, within the limits, and builds records."""

    def __init__(
        self, tier: Tier, plan: _Plan, limits: Limits, recognizers: tuple[CustomSpec, ...] = ()
    ) -> None:
        self.tier = tier
        self.plan = plan
        self.limits = limits
        self.recognizers = recognizers
        self.cache: dict[str, list[Finding]] = {}
        self.pending: dict[str, None] = {}  # insertion-ordered set
        self.chars = 0
        self.records: dict[tuple[str, Part, str], Record] = {}

    def add(self, text: str) -> None:
        """Count a text against the limits; it is scanned with the others when the steps yield."""
        if not text or not self.plan.actions or text in self.cache or text in self.pending:
            return
        self.chars += len(text)
        if len(self.cache) + len(self.pending) >= self.limits.max_strings:
            raise Unscannable(f"more than {self.limits.max_strings} distinct strings")
        if self.chars > self.limits.max_chars:
            raise Unscannable(f"more than {self.limits.max_chars} characters to scan")
        self.pending[text] = None

    def batch_key(self) -> tuple[Tier, tuple[str, ...], tuple[CustomSpec, ...]]:
        """Scanners with equal keys find the same things in a text: their texts go together."""
        return self.tier, tuple(sorted(self.plan.actions)), self.recognizers

    def findings(self, text: str) -> list[Finding]:
        """What was found in `text`, which must have been added and scanned."""
        if not text or not self.plan.actions:
            return []
        found = self.cache.get(text)
        if found is None:  # never scanned: it must not pass
            raise Unscannable("a text was not scanned")
        return found

    def record(self, path: str, part: Part, findings: Sequence[Finding]) -> None:
        for f in findings:
            key = (path, part, f.entity)
            old = self.records.get(key)
            if old is None or f.score > old.score:
                action = self.plan.actions.get(f.entity, Action.REPORTED)
                self.records[key] = Record(path, f.entity, f.score, action, part)

    def actionable(self, findings: Sequence[Finding]) -> list[Finding]:
        return [f for f in findings if self.plan.masks(f.entity)]

    def verdict(self) -> Verdict:
        return Verdict.of(list(self.records.values()))


def _collect(scanner: _Scanner, node: Any, depth: int = 0) -> None:
    """Add every key, string and number of a parsed value to the scanner, in walk order."""
    stack = [(node, depth)]
    while stack:
        item, level = stack.pop()
        if level > scanner.limits.max_depth:
            raise Unscannable(f"nested deeper than {scanner.limits.max_depth}")
        if isinstance(item, dict):
            for key in item:
                scanner.add(key)
            stack.extend((v, level + 1) for v in reversed(item.values()))
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in reversed(item))
        elif isinstance(item, str):
            scanner.add(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            scanner.add(_number_text(item))


class _Walker:
    """Rebuilds a parsed JSON value with its keys, strings and numbers redacted."""

    def __init__(self, scanner: _Scanner) -> None:
        self.scanner = scanner

    def value(self, node: Any, path: str, depth: int) -> Any:
        if depth > self.scanner.limits.max_depth:
            raise Unscannable(f"nested deeper than {self.scanner.limits.max_depth}")
        if isinstance(node, dict):
            return self.obj(node, path, depth)
        if isinstance(node, list):
            return [self.value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
        if isinstance(node, str):
            return self.string(node, path)
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return self.number(node, path)
        return node  # true, false, null carry nothing

    def string(self, text: str, path: str) -> str:
        found = self.scanner.findings(text)
        self.scanner.record(path, Part.VALUE, found)
        masked = self.scanner.actionable(found)
        return _mask(text, masked) if masked else text

    def number(self, number: int | float, path: str) -> int | float | str:
        found = self.scanner.findings(_number_text(number))
        self.scanner.record(path, Part.VALUE, found)
        masked = self.scanner.actionable(found)
        if not masked:
            return number
        best = max(masked, key=lambda f: (f.score, f.end - f.start))
        return f"<{best.entity}>"

    def obj(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        found = {k: self.scanner.findings(k) for k in node}
        renamed = {k: _mask(k, self.scanner.actionable(f)) for k, f in found.items()}
        used = {k for k, new in renamed.items() if new == k}
        out: dict[str, Any] = {}
        for key, value in node.items():
            new = renamed[key]
            if new != key:
                new = _free_name(new, used)
                used.add(new)
                shown = new
            else:
                shown = _mask(key, found[key])  # reported-only spans stay out of the audit path
            child = path + _key_segment(shown)
            self.scanner.record(child, Part.KEY, found[key])
            out[new] = self.value(value, child, depth + 1)
        return out


def _free_name(name: str, used: set[str]) -> str:
    """`name`, or the first `name#n` (n ≥ 2) no other member of the object uses."""
    if name not in used:
        return name
    n = 2
    while f"{name}#{n}" in used:
        n += 1
    return f"{name}#{n}"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise Unscannable("duplicate key in a JSON object")
    return obj


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise Unscannable(f"number out of range: {raw[:32]}")
    return value


def _reject_constant(raw: str) -> None:
    raise ValueError(f"not JSON: {raw}")


def _parse(text: str) -> Any:
    return json.loads(
        text, object_pairs_hook=_pairs, parse_float=_finite, parse_constant=_reject_constant
    )


def _ints(node: Any) -> Iterator[int]:
    """Every integer in a parsed value (to check orjson can write each back)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            yield item


def _recognizers(settings: ResponseRules) -> tuple[CustomSpec, ...]:
    return custom_specs(getattr(settings, "recognizers", None) or ())


Steps = Generator["_Scanner", None, "Result"]


def _scan_together(scanners: Sequence[_Scanner]) -> list[Unscannable | None]:
    """Scan the texts every scanner added, all in one `scan_texts` call (equal `batch_key`s);
    each scanner's failure or None. A failed batch is scanned again scanner by scanner, so only
    the body at fault fails."""
    try:
        _scan_batch(scanners)
    except Unscannable as exc:
        if len(scanners) == 1:
            return [exc]
        return [_scan_together([scanner])[0] for scanner in scanners]
    return [None] * len(scanners)


def _scan_batch(scanners: Sequence[_Scanner]) -> None:
    first = scanners[0]
    texts = list(dict.fromkeys(t for scanner in scanners for t in scanner.pending))
    try:
        found = dict(zip(texts, scan_texts(texts, first.tier, list(first.plan.actions),
                                           recognizers=first.recognizers), strict=True))
    except Exception as exc:  # analyzer fault: fail closed, never pass
        raise Unscannable(f"analyzer failed: {type(exc).__name__}") from exc
    for scanner in scanners:
        scanner.cache.update((t, found[t]) for t in scanner.pending)
        scanner.pending.clear()


def judge_all(bodies: Sequence[Steps]) -> list[Result]:
    """Drive the steps of several bodies together: at each round, the texts every waiting body
    added are scanned in one batch per `batch_key`."""
    results: list[Result | None] = [None] * len(bodies)
    waiting: dict[int, _Scanner] = {}

    def advance(i: int, failure: Unscannable | None) -> None:
        try:
            if failure is not None:
                waiting[i] = bodies[i].throw(failure)
            else:
                waiting[i] = bodies[i].send(None)
        except StopIteration as done:
            waiting.pop(i, None)
            results[i] = done.value

    for i in range(len(bodies)):
        advance(i, None)
    while waiting:
        groups: dict[object, list[int]] = {}
        for i, scanner in waiting.items():
            groups.setdefault(scanner.batch_key(), []).append(i)
        for members in groups.values():
            failures = _scan_together([waiting[i] for i in members])
            for i, failure in zip(members, failures, strict=True):
                advance(i, failure)
    return results  # type: ignore[return-value]


def json_steps(
    body: bytes, tier: Tier | str, settings: ResponseRules, limits: Limits = DEFAULT_LIMITS
) -> Steps:
    """Scan and redact a JSON body in place; the body comes back compact, same shape, valid JSON."""
    if len(body) > limits.max_bytes:
        return _unscannable(f"body over {limits.max_bytes} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _unscannable("JSON body is not UTF-8")
    try:
        tree = _parse(text)
    except Unscannable as exc:
        return _unscannable(str(exc))
    except RecursionError:
        return _unscannable("JSON nested too deep to parse")
    except ValueError:  # JSONDecodeError, over-long integer literals, NaN/Infinity
        result = yield from text_steps(text, tier, settings, limits)
        note = "not valid JSON: scanned as text"
        return Result(result.verdict, result.body, result.note or note)
    if any(not -(2**63) <= i < 2**64 for i in _ints(tree)):
        return _unscannable("integer beyond 64 bits")
    scanner = _Scanner(Tier(tier), _Plan.of(settings), limits, _recognizers(settings))
    try:
        if scanner.plan.actions:
            _collect(scanner, tree)
            if scanner.pending:
                yield scanner
            if not any(scanner.cache.values()):  # nothing anywhere: no records, nothing masked
                return Result(Verdict(Outcome.PASS), orjson.dumps(tree))
        redacted = _Walker(scanner).value(tree, ROOT, 0)
    except Unscannable as exc:
        return _unscannable(str(exc))
    return Result(scanner.verdict(), orjson.dumps(redacted))


def text_steps(
    body: str, tier: Tier | str, settings: ResponseRules, limits: Limits = DEFAULT_LIMITS
) -> Steps:
    """Scan a text body as one piece and redact it in place; records name the field `response`."""
    if len(body.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        return _unscannable(f"body over {limits.max_bytes} bytes")
    scanner = _Scanner(Tier(tier), _Plan.of(settings), limits, _recognizers(settings))
    try:
        scanner.add(body)
        if scanner.pending:
            yield scanner
    except Unscannable as exc:
        return _unscannable(str(exc))
    found = scanner.findings(body)
    scanner.record(ROOT, Part.VALUE, found)
    masked = scanner.actionable(found)
    return Result(scanner.verdict(), _mask(body, masked) if masked else body)


def scan_json(
    body: bytes, tier: Tier | str, settings: ResponseRules, limits: Limits = DEFAULT_LIMITS
) -> Result:
    """`json_steps` for one body alone."""
    return judge_all([json_steps(body, tier, settings, limits)])[0]


def scan_plain_text(
    body: str, tier: Tier | str, settings: ResponseRules, limits: Limits = DEFAULT_LIMITS
) -> Result:
    """`text_steps` for one body alone."""
    return judge_all([text_steps(body, tier, settings, limits)])[0]


__all__ = [
    "DEFAULT_LIMITS",
    "Action",
    "Limits",
    "Outcome",
    "Part",
    "Record",
    "Result",
    "ResponseRules",
    "Steps",
    "Verdict",
    "judge_all",
    "json_steps",
    "scan_json",
    "scan_plain_text",
    "text_steps",
]
