"""Parameters pulled from a request: where they come from and how hostile input is read.

The rule for hostile input is "never guess what the upstream will see". A field sent twice
(form, query, header, or a duplicated JSON key), a body that does not parse, or one too large to
parse is UNREADABLE: present, but with no single value Gatehouse can vouch for. A condition on
an unreadable param is unknown, which fails an allowing rule and satisfies a refusing one
(`decide`), so garbling a request can neither earn an allow nor dodge a deny. MISSING is for a
param that is simply not there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qsl

from gateway.call import Call
from gateway.policy.paths import path_segments

MAX_PARSED_BODY: Final = 4 * 1024 * 1024
"""Bodies larger than this are not parsed for parameters (their parameters are missing)."""

Kind = Literal["json", "form", "query", "path", "header", "mcp"]
Step = str | int


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Final = _Marker("MISSING")
"""What `extract` returns for a parameter that is not in the request."""
UNREADABLE: Final = _Marker("UNREADABLE")
"""What `extract` returns for a parameter that is there but has no single trustworthy value."""
AMBIGUOUS: Final = _Marker("AMBIGUOUS")
"""Stands in for the value of a JSON key that occurs more than once in its object."""
_UNSET: Final = _Marker("UNSET")

_STEP = re.compile(r"\.([A-Za-z0-9_$@-]+)|\[(\d+)\]|\['([^'\]]*)'\]|\[\"([^\"\]]*)\"\]")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_KINDS: tuple[Kind, ...] = ("json", "form", "query", "path", "header", "mcp")


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed param source such as `json:$.a.b[0]`: its kind, field name, and JSON steps."""

    kind: Kind
    name: str
    steps: tuple[Step, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def parse_source(text: str) -> Source:
    """Parse a param source; ValueError says which forms exist."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in _KINDS:
        raise ValueError(
            f"unknown param source `{text}`; use one of json:$.path, form:field, "
            "query:name, path:name, header:name, mcp:arguments.path"
        )
    if kind == "json":
        if not rest.startswith("$"):
            raise ValueError(f"json path `{rest}` must start with `$`, like `$.items[0].id`")
        return Source(kind, rest, _steps(rest[1:], text))
    if kind == "mcp":
        if not rest:
            raise ValueError(f"`{text}` needs a path after `mcp:`, like `mcp:arguments.path`")
        return Source(kind, rest, _steps("." + rest, text))
    if not _NAME.fullmatch(rest):
        raise ValueError(f"`{text}` needs a field name after `{kind}:`, like `{kind}:amount`")
    return Source(kind, rest.lower() if kind == "header" else rest)


def _steps(path: str, text: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    pos = 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise ValueError(
                f"unsupported path in `{text}`; use `.name`, `['name']` and `[0]` steps only"
            )
        name, index, quoted, double = match.groups()
        steps.append(int(index) if index is not None else (name or quoted or double or ""))
        pos = match.end()
    return tuple(steps)


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        result[key] = AMBIGUOUS if key in result else value
    return result


def _refuse_constant(name: str) -> object:
    raise ValueError(f"not JSON: {name}")


def parse_json(body: bytes) -> object:
    """The parsed body, with duplicated keys marked AMBIGUOUS; MISSING when there is no body,
    UNREADABLE when it is not JSON or too large to parse."""
    if not body:
        return MISSING
    if len(body) > MAX_PARSED_BODY:
        return UNREADABLE
    try:
        return json.loads(body, object_pairs_hook=_pairs, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return UNREADABLE


def _multidict(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, value in pairs:
        result.setdefault(key, []).append(value)
    return result


def walk(value: object, steps: tuple[Step, ...]) -> object:
    """Follow JSON steps: MISSING where the path ends early or meets null, UNREADABLE where it
    meets a duplicated key (or an unreadable body)."""
    for step in steps:
        if value is UNREADABLE:
            return UNREADABLE
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return MISSING
            value = value[step]
        else:
            if not isinstance(value, dict):
                return MISSING
            value = value.get(step, MISSING)
        if value is AMBIGUOUS:
            return UNREADABLE
        if value is MISSING:
            return MISSING
    if value is UNREADABLE or _holds_ambiguity(value):
        return UNREADABLE
    return MISSING if value is None else value


def _holds_ambiguity(value: object) -> bool:
    """Whether a duplicated key hides anywhere inside (iterative: bodies can nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is AMBIGUOUS:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class RequestView:
    """One call with its parts parsed lazily, each at most once per evaluation."""

    __slots__ = ("call", "_json", "_form", "_query", "_headers", "_segments")

    def __init__(self, call: Call) -> None:
        self.call = call
        self._json: object = _UNSET
        self._form: dict[str, list[str]] | None | _Marker = _UNSET
        self._query: dict[str, list[str]] | None = None
        self._headers: dict[str, list[str]] | None = None
        self._segments: tuple[str, ...] | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        if self._segments is None:
            self._segments = path_segments(self.call.path)
        return self._segments

    def json(self) -> object:
        """The body as JSON; UNREADABLE unless the Content-Type says JSON (a body that parses
        as JSON and as a form would give the upstream one value and the policy another)."""
        if self._json is _UNSET:
            body = self.call.body
            self._json = parse_json(body) if is_json(self.call.content_type) or not body \
                else UNREADABLE
        return self._json

    def form(self) -> dict[str, list[str]] | None:
        """Fields of a form-encoded body; None when the Content-Type is not form encoding, or
        the body is not valid form encoding or too large to parse."""
        if self._form is _UNSET:
            form_type = self.call.content_type == FORM_TYPE
            self._form = _parse_form(self.call.body) if form_type else None
        return self._form  # type: ignore[return-value]

    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = _multidict(self.call.query)
        return self._query

    def headers(self) -> dict[str, list[str]]:
        if self._headers is None:
            self._headers = _multidict([(k.lower(), v) for k, v in self.call.headers])
        return self._headers

    def extract(self, source: Source, captures: dict[str, str], rpc_params: object) -> object:
        """The value of one param for this call, MISSING or UNREADABLE (module docstring)."""
        kind = source.kind
        if kind == "json":
            return walk(self.json(), source.steps)
        if kind == "mcp":
            return walk(rpc_params, source.steps)
        if kind == "path":
            return captures.get(source.name, MISSING)
        if kind == "header":
            return _single(self.headers().get(source.name))
        # A field both in the query and in a form body: the upstream may read either copy.
        name = source.name
        if kind == "form":
            if name in self.query():
                return UNREADABLE
            form = self.form()
            if form is None:
                return UNREADABLE if self.call.body else MISSING
            return _single(form.get(name))
        if name in (self.form() or {}):
            return UNREADABLE
        return _single(self.query().get(name))


FORM_TYPE: Final = "application/x-www-form-urlencoded"


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


def _single(values: list[str] | None) -> object:
    if not values:
        return MISSING
    return values[0] if len(values) == 1 else UNREADABLE


def _parse_form(body: bytes) -> dict[str, list[str]] | None:
    if len(body) > MAX_PARSED_BODY:
        return None
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return _multidict(pairs)
