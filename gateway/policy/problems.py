"""Pydantic's validation errors rewritten as located, lowercase sentences that say the fix.

Allowed keys and allowed values are read from the schema itself (walking the model types along
the error's `loc`), so the messages stay right when the schema grows.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from enum import Enum
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gateway.policy.errors import Problem, describe
from gateway.policy.yamldoc import Document

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list, like `[a, b]`",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "datetime_type": "a date and time",
}


def _unwrap(tp: object) -> object:
    """Strip Annotated and `| None` so only the meaningful type is left."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _field_type(model: type[BaseModel], key: object) -> object | None:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info.annotation
    return None


def type_at(root: type[BaseModel], loc: Sequence[str | int]) -> object | None:
    """The schema type found by following `loc` from the root model (None if it leads nowhere)."""
    tp: object = root
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = _field_type(tp, part)
        elif origin is list and isinstance(part, int):
            tp = get_args(tp)[0]
        elif origin is dict:
            tp = get_args(tp)[1]
        else:
            return None
        if tp is None:
            return None
    return _unwrap(tp)


def _keys(tp: object) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [info.alias or name for name, info in tp.model_fields.items()]
    return []


def _choices(tp: object) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return [str(member.value) for member in tp]
    if get_origin(tp) is Literal:
        return [str(arg) for arg in get_args(tp)]
    return []


def _key_name(loc: Sequence[str | int]) -> str:
    names = [p for p in loc if isinstance(p, str) and p != "[key]"]
    return names[-1] if names else "value"


def _message(root: type[BaseModel], error: dict[str, object]) -> tuple[tuple, str]:
    """The loc to point at and the sentence for one pydantic error."""
    kind = str(error["type"])
    loc = tuple(error["loc"])  # type: ignore[arg-type]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    assert isinstance(ctx, dict)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _keys(type_at(root, loc[:-1]))
        close = difflib.get_close_matches(key, allowed)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(allowed)}"
        return loc, f"unknown key `{key}`; {hint}"
    if kind == "missing":
        key = str(loc[-1])
        options = _choices(type_at(root, loc))
        hint = f" (one of {', '.join(options)})" if options else ""
        return loc[:-1], f"missing required key `{key}`; add `{key}:`{hint}"
    if kind in ("enum", "literal_error"):
        options = _choices(type_at(root, loc))
        return loc, f"unknown {_key_name(loc)} {describe(value)}; use one of {', '.join(options)}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return loc, str(ctx["error"])
    if kind in _EXPECTED:
        quote = kind == "string_type" and isinstance(value, int | float)
        hint = "; put it in quotes" if quote else ""
        return loc, f"expected {_EXPECTED[kind]}, got {describe(value)}{hint}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "greater than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return loc, f"must be {words} {bound}, got {describe(value)}"
    if kind == "too_short":
        return loc, "must not be empty"
    text = str(error.get("msg", kind))
    return loc, text[:1].lower() + text[1:]


def problems_from(doc: Document, root: type[BaseModel], err: ValidationError) -> list[Problem]:
    """One located problem per pydantic error, except a "missing" key that a misspelt key
    right beside it already explains (`decison` -> `decision`)."""
    errors = [dict(e) for e in err.errors(include_url=False)]
    misspelt = set()
    for error in errors:
        loc = tuple(error["loc"])  # type: ignore[arg-type]
        if error["type"] == "extra_forbidden":
            allowed = _keys(type_at(root, loc[:-1]))
            misspelt |= {loc[:-1] + (k,) for k in difflib.get_close_matches(str(loc[-1]), allowed)}
    found: list[Problem] = []
    for error in errors:
        if error["type"] == "missing" and tuple(error["loc"]) in misspelt:  # type: ignore[arg-type]
            continue
        loc, message = _message(root, error)
        found.append(doc.problem(loc, message))
    return found
