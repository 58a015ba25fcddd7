"""Autonomy levels: which calls a level holds, and that the rules stay in charge otherwise."""

from __future__ import annotations

import pytest

from gateway.autonomy import apply_level
from gateway.call import Action
from gateway.policy import Decision, PolicyError, Verdict, load_policy_text
from gateway.policy.schema import Autonomy

AUTONOMY = Autonomy.model_validate({
    "default_level": 1,
    "levels": {0: {"approval_actions": ["*"]}, 1: {"approval_tags": ["write"]},
               2: {"approval_actions": ["payments.*"]}, 3: {}}})
READ = Action(type="docs.read")
MAIL = Action(type="email.send", tags=frozenset({"write"}))
REFUND = Action(type="payments.refund", tags=frozenset({"write", "financial"}))


def decided(verdict: Verdict) -> Decision:
    return Decision(verdict=verdict, rule_ids=("r",), reason="rule", snapshot_id="1:x")


@pytest.mark.parametrize(("level", "action", "held"), [
    (0, READ, True), (1, READ, False), (1, MAIL, True), (2, MAIL, False), (2, REFUND, True),
    (3, REFUND, False), (9, REFUND, False),
])
def test_a_level_holds_what_it_lists(level: int, action: Action, held: bool) -> None:
    result = apply_level(decided(Verdict.ALLOW), AUTONOMY, level, action, "bot")
    assert (result.verdict is Verdict.REQUIRE_APPROVAL) is held
    if held:
        assert result.rule_ids == (f"autonomy-level-{level}",)


def test_a_stricter_rule_stays_and_no_autonomy_changes_nothing() -> None:
    denied = decided(Verdict.DENY)
    assert apply_level(denied, AUTONOMY, 0, MAIL, "bot") is denied
    allowed = decided(Verdict.ALLOW)
    assert apply_level(allowed, None, 0, MAIL, "bot") is allowed


def test_the_default_level_must_be_one_of_the_levels() -> None:
    with pytest.raises(PolicyError, match="default_level 5 is not one of the levels"):
        load_policy_text('version: 1\npolicy: p\nrevision: "1"\nautonomy: {default_level: 5, '
                         'levels: {0: {}}}\n')
