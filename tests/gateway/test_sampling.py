"""Which forwarded calls are drawn for a post-execution review, and why."""

from __future__ import annotations

from gateway.policy.schema import Sampling
from gateway.sampling import Sampler


def record(action: str = "docs.read", decision: str = "allow", tags: list[str] | None = None,
           **params: object) -> dict[str, object]:
    return {"request_id": "req_1", "agent": "bot", "action": action, "decision": decision,
            "tags": tags or [], "params": params}


def sampler(draw: float, first: bool = False, **sampling: object) -> Sampler:
    return Sampler(Sampling.model_validate(sampling), lambda agent, action: first,
                   draw=lambda: draw)


def test_calls_a_reviewer_saw_or_that_were_refused_are_never_drawn() -> None:
    always = sampler(0.0, rate=1.0)
    assert always.why(record(decision="approved")) is None
    assert always.why(record(decision="denied")) is None
    assert always.why(record()) == "random"


def test_the_rate_is_multiplied_by_the_largest_tag_weight() -> None:
    weighted = {"rate": 0.1, "tag_weights": {"financial": 5, "write": 2}}
    assert sampler(0.3, **weighted).why(record(tags=["write"])) is None  # 0.3 >= 0.2
    assert sampler(0.3, **weighted).why(record(tags=["write", "financial"])) == "weighted"
    assert sampler(0.3, **weighted).why(record()) is None


def test_mandatory_rules_and_first_time_actions_are_always_drawn() -> None:
    rules = {"always": [{"actions": "payments.*", "params": {"amount_cents": {"gte": 10000}}}],
             "first_time": True}
    assert sampler(1.0, **rules).why(record("payments.refund", amount_cents=25000)) == (
        "mandatory")
    assert sampler(1.0, **rules).why(record("payments.refund", amount_cents=500)) is None
    assert sampler(1.0, first=True, **rules).why(record("payments.refund")) == (
        "first_time_action")
