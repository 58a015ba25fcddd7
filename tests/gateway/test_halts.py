"""The halt board: which halts cover which calls."""

from __future__ import annotations

import pytest

from gateway.halts import Halt, HaltBoard, HaltError, validate_halt


def halt(scope: str, target: str, lifted: bool = False) -> Halt:
    return Halt(id=f"h_{scope}_{target}", scope=scope, target=target, reason="r", actor="rex",
                created_at="2026-01-01T00:00:00.000000Z",
                lifted_at="2026-01-01T00:01:00.000000Z" if lifted else None)


CALL = {"agent": "support-bot", "tenant": "acme", "host": "api.sendgrid.com",
        "action": "email.send"}


@pytest.mark.parametrize(("scope", "target", "covers"), [
    ("all", "", True),
    ("agent", "support-bot", True),
    ("agent", "ops-bot", False),
    ("tenant", "acme", True),
    ("tenant", "globex", False),
    ("host", "api.sendgrid.com", True),
    ("host", "api.stripe.com", False),
    ("action", "email.send", True),
    ("action", "email.*", True),
    ("action", "*", True),
    ("action", "payments.*", False),
    ("action", "email.sen", False),
])
def test_a_halt_covers_exactly_the_calls_in_its_scope(scope: str, target: str,
                                                      covers: bool) -> None:
    found = HaltBoard([halt(scope, target)]).match(**CALL)
    assert (found is not None) is covers


def test_a_lifted_halt_covers_nothing() -> None:
    assert HaltBoard([halt("all", "", lifted=True)]).match(**CALL) is None


def test_facts_not_known_yet_are_not_checked() -> None:
    board = HaltBoard([halt("action", "email.*")])
    assert board.match(agent="support-bot", tenant=None, host="x", action=None) is None


@pytest.mark.parametrize(("scope", "target", "reason", "message"), [
    ("everything", None, "r", "unknown halt scope `everything`"),
    ("agent", None, "r", "scope `agent` needs a `target`"),
    ("all", "bot", "r", "scope `all` takes no `target`"),
    ("all", None, "  ", "a halt needs a `reason`"),
])
def test_bad_halt_requests_say_what_to_fix(scope: str, target: str | None, reason: str,
                                           message: str) -> None:
    with pytest.raises(HaltError, match=message):
        validate_halt(scope, target, reason)


def test_host_targets_are_compared_lower_case() -> None:
    assert validate_halt("host", "API.Stripe.com", "r") == ("host", "api.stripe.com")
