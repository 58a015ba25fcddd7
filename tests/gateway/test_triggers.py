"""Triggers: what each counts per agent, within its window, and that a firing starts afresh."""

from __future__ import annotations

from gateway.policy.schema import Trigger
from gateway.triggers import TriggerWatch


def trigger(on: str | list[str], at_least: int = 3, seconds: int = 60,
            **extra: object) -> Trigger:
    return Trigger(id="t", count=on, at_least=at_least, within=f"{seconds}s",
                   **extra)


def call(n: int, decision: str = "allow", agent: str = "bot", request_hash: str = "h1",
         **extra: object) -> dict[str, object]:
    return {"request_id": f"req_{n}", "agent": agent, "action": "email.send",
            "decision": decision, "request_hash": request_hash, **extra}


def feed(watch: TriggerWatch, records: list[dict[str, object]], event: str = "call.decided",
         start: float = 0.0, step: float = 1.0) -> list[list[str]]:
    """The evidence of each firing, in order."""
    fired = []
    for i, record in enumerate(records):
        fired += [list(f.evidence) for f in watch.observe(event, record, start + i * step)]
    return fired


def test_denials_fire_at_the_count_with_the_request_ids_as_evidence() -> None:
    watch = TriggerWatch([trigger("denials")])
    records = [call(1, "denied"), call(2, "allow"), call(3, "approval_denied"),
               call(4, "denied")]
    assert feed(watch, records) == [["req_1", "req_3", "req_4"]]


def test_only_denials_inside_the_window_count() -> None:
    watch = TriggerWatch([trigger("denials", seconds=10)])
    assert feed(watch, [call(n, "denied") for n in range(6)], step=6.0) == []


def test_each_agent_is_counted_on_its_own() -> None:
    watch = TriggerWatch([trigger("denials")])
    records = [call(1, "denied", agent="a"), call(2, "denied", agent="b"),
               call(3, "denied", agent="a"), call(4, "denied", agent="b")]
    assert feed(watch, records) == []


def test_a_firing_starts_a_fresh_window() -> None:
    watch = TriggerWatch([trigger("denials", at_least=2)])
    assert feed(watch, [call(n, "denied") for n in range(5)]) == [
        ["req_0", "req_1"], ["req_2", "req_3"]]


def test_repeats_count_the_same_request_but_not_retries_of_a_held_call() -> None:
    watch = TriggerWatch([trigger("repeats")])
    held = [call(n, "approval_pending") for n in range(5)]
    other = [call(10 + n, request_hash=f"other{n}") for n in range(5)]
    assert feed(watch, held + other) == []
    assert feed(watch, [call(20), call(21, "denied"), call(22)]) == [
        ["req_20", "req_21", "req_22"]]


def test_calls_count_everything_but_halt_refusals() -> None:
    watch = TriggerWatch([trigger("calls", at_least=4)])
    records = [call(1), call(2, "halted"), call(3, "denied", request_hash="x"), call(4, "halted"),
               call(5, request_hash="y"), call(6, "approval_pending")]
    assert feed(watch, records) == [["req_1", "req_3", "req_5", "req_6"]]


def test_dlp_fires_on_a_request_carrying_a_looked_for_entity() -> None:
    watch = TriggerWatch([trigger("dlp", at_least=1)])
    assert feed(watch, [call(1, request_entities=[]), call(2, request_entities=None),
                        call(3, "denied", request_entities=["US_SSN"])]) == [["req_3"]]


def test_quarantines_are_counted_from_response_records() -> None:
    watch = TriggerWatch([trigger("quarantines", at_least=2)])
    responses = [{"request_id": "req_1", "agent": "bot", "outcome": "quarantine"},
                 {"request_id": "req_2", "agent": "bot", "outcome": "redacted"},
                 {"request_id": "req_3", "agent": "bot", "outcome": "unscannable"}]
    assert feed(watch, responses, event="call.response") == [["req_1", "req_3"]]
    assert feed(watch, [call(9, "denied")]) == []  # a denial is not a quarantine


def test_one_trigger_may_count_denials_and_quarantines_together() -> None:
    watch = TriggerWatch([trigger(["denials", "quarantines"], at_least=2)])
    assert feed(watch, [call(1, "denied")]) == []
    fired = watch.observe("call.response",
                          {"request_id": "req_2", "agent": "bot", "outcome": "quarantine"}, 2.0)
    assert [list(f.evidence) for f in fired] == [["req_1", "req_2"]]
    assert fired[0].summary == ("trigger `t`: 2 denials or quarantines by `bot` within 60 s")


def test_records_without_an_agent_are_not_counted() -> None:
    watch = TriggerWatch([trigger("calls", at_least=1)])
    assert feed(watch, [{"request_id": "req_1", "decision": "identity_required"}]) == []
