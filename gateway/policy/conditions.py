"""Structured conditions on action parameters, compiled once when the policy loads.

No `eval` and no regular expressions on agent input: each test is a small comparison. Numbers
are compared exactly (Decimal); a string counts as a number only if it is plainly written
(`-?digits[.digits]`), so `"1e9"`, `" 5"`, `true` or a list never pass a numeric test. A missing
parameter makes every test false except `exists: false`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from gateway.policy.globs import Glob
from gateway.policy.params import MISSING

if TYPE_CHECKING:
    from gateway.policy.schema import Condition, Scalar

Test = Callable[[object], bool]
"""A compiled condition: the parameter's value (or MISSING) -> whether it holds."""

_PLAIN_NUMBER = re.compile(r"-?[0-9]{1,40}(?:\.[0-9]{1,40})?")


def as_number(value: object) -> Decimal | None:
    """The exact numeric value of an int, finite float or plainly written numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value):
        return Decimal(value)
    return None


Comparer = Callable[[object], bool | None]


def _comparer(target: Scalar) -> Comparer:
    """Equality by the target's type; None when the value is not comparable with it."""
    if isinstance(target, bool):
        return lambda value: (value is target) if isinstance(value, bool) else None
    if isinstance(target, int | float):
        number = as_number(target)

        def numeric(value: object) -> bool | None:
            got = as_number(value)
            return None if got is None else got == number

        return numeric
    return lambda value: (value == target) if isinstance(value, str) else None


def _ordering(op: str, bound: float) -> Test:
    limit = as_number(bound)
    assert limit is not None  # the schema only admits finite numbers
    compare: Callable[[Decimal, Decimal], bool] = {
        "lt": Decimal.__lt__,
        "lte": Decimal.__le__,
        "gt": Decimal.__gt__,
        "gte": Decimal.__ge__,
    }[op]

    def test(value: object) -> bool:
        number = as_number(value)
        return number is not None and compare(number, limit)

    return test


def _in(targets: Sequence[Scalar]) -> Test:
    comparers = [_comparer(t) for t in targets]
    return lambda value: any(c(value) for c in comparers)


def _not_in(targets: Sequence[Scalar]) -> Test:
    comparers = [_comparer(t) for t in targets]
    return lambda value: all(c(value) is False for c in comparers)


def _glob(pattern: str) -> Test:
    # Case-insensitive: a deny rule for `*@rival.example` must also catch `X@Rival.Example`.
    glob = Glob(pattern, casefold=True)
    return lambda value: isinstance(value, str) and glob.matches(value)


def compile_condition(condition: Condition) -> Test:
    """One test that is true when every key of the condition holds (keys combine with AND)."""
    tests: list[Test] = []
    for op in ("lt", "lte", "gt", "gte"):
        bound = getattr(condition, op)
        if bound is not None:
            tests.append(_ordering(op, bound))
    if condition.eq is not None:
        tests.append(_in([condition.eq]))
    if condition.ne is not None:
        tests.append(_not_in([condition.ne]))
    if condition.in_ is not None:
        tests.append(_in(condition.in_))
    if condition.not_in is not None:
        tests.append(_not_in(condition.not_in))
    if condition.glob is not None:
        tests.append(_glob(condition.glob))
    if condition.exists is False:
        return lambda value: value is MISSING

    def test(value: object) -> bool:
        return value is not MISSING and all(t(value) for t in tests)

    return test
