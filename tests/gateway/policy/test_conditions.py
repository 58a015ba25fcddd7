"""Conditions on params: strict numbers, missing means false, keys combine with AND."""

from decimal import Decimal

import pytest

from gateway.policy.conditions import as_number, compile_condition
from gateway.policy.params import MISSING
from gateway.policy.schema import Condition


def holds(condition: dict, value: object) -> bool:
    return compile_condition(Condition.model_validate(condition))(value)


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ({"lt": 10000}, 5000, True),
        ({"lt": 10000}, "5000", True),  # a plainly written numeric string counts
        ({"lt": 10000}, 10000, False),
        ({"lt": 10000}, "-5", True),
        ({"lt": 10000}, 9999.99, True),
        ({"gte": 10000}, "10000", True),
        ({"gte": 10000}, "10000.0", True),
        ({"gte": 10000}, 25000, True),
        ({"gt": 0.1}, 0.1, False),  # exact decimal comparison, no float surprises
        ({"lte": 5}, 5, True),
        ({"gte": 10000, "lt": 20000}, 15000, True),  # AND
        ({"gte": 10000, "lt": 20000}, 25000, False),
        # refused: never a number
        ({"lt": 10000}, "1e3", False),
        ({"lt": 10000}, " 5", False),
        ({"lt": 10000}, "5 ", False),
        ({"lt": 10000}, "5\n", False),
        ({"lt": 10000}, "٥", False),  # a non-ASCII digit
        ({"lt": 10000}, "0x10", False),
        ({"lt": 10000}, "", False),
        ({"lt": 10000}, True, False),
        ({"lt": 10000}, [5], False),
        ({"lt": 10000}, {"v": 5}, False),
        ({"lt": 10000}, float("nan"), False),
        ({"gte": 10000}, float("inf"), False),
        ({"lt": 10000}, "9" * 100, False),  # absurdly long
        # equality by the target's type
        ({"eq": "usd"}, "usd", True),
        ({"eq": "usd"}, "USD", False),
        ({"eq": 5}, "5", True),
        ({"eq": 5}, "five", False),
        ({"eq": True}, True, True),
        ({"eq": True}, "true", False),
        ({"eq": 1}, True, False),
        ({"ne": "usd"}, "eur", True),
        ({"ne": "usd"}, "usd", False),
        ({"ne": "usd"}, 5, False),  # not comparable: refused
        ({"in": ["usd", "eur"]}, "eur", True),
        ({"in": ["usd", "eur"]}, "gbp", False),
        ({"not_in": ["usd", "eur"]}, "gbp", True),
        ({"not_in": ["usd", "eur"]}, "usd", False),
        ({"not_in": [1, 2]}, "abc", False),  # not comparable: refused
        ({"glob": "*@competitor.example"}, "x@competitor.example", True),
        ({"glob": "*@competitor.example"}, "X@COMPETITOR.EXAMPLE", True),
        ({"glob": "*@competitor.example"}, "x@competitor.example.org", False),
        ({"glob": "*@competitor.example"}, 5, False),
        ({"exists": True}, "", True),
        ({"exists": False}, "", False),
        # shorthand: a bare value means eq
        ("usd", "usd", True),
        (5, "5", True),
    ],
)
def test_condition(condition: object, value: object, expected: bool) -> None:
    assert holds(condition, value) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "condition",
    [
        {"lt": 10000},
        {"gte": 10000},
        {"eq": "x"},
        {"ne": "x"},
        {"not_in": ["x"]},
        {"glob": "*"},
        {"exists": True},
    ],
)
def test_a_missing_param_makes_every_test_false(condition: dict) -> None:
    assert holds(condition, MISSING) is False


def test_exists_false_holds_only_when_missing() -> None:
    assert holds({"exists": False}, MISSING) is True


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({}, "empty condition; use one of lt, lte, gt, gte, eq, ne, in, not_in, glob, exists"),
        ({"exists": False, "eq": 1}, "`exists: false` cannot be combined with other tests"),
        ({"lt": "100"}, "expected a number, got `100`"),
        ({"lt": True}, "expected a number, got `true`"),
        ({"lt": float("inf")}, "expected a number"),
        ({"eq": [1]}, "expected a single value"),
        ({"between": [1, 2]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_conditions(condition: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        Condition.model_validate(condition)
    assert message in str(err.value)


def test_as_number_is_exact() -> None:
    assert as_number("10000.50") == Decimal("10000.50")
    assert as_number(0.1) == Decimal("0.1")
    assert as_number(False) is None
