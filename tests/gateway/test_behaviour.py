"""Signals for exception escalation: retries of the same request, and how unusual a call is
against the agent's own last hour."""

from __future__ import annotations

import pytest

from gateway.behaviour import RETRY_WINDOW, Behaviour, confidence


def test_retries_count_the_same_request_from_the_same_agent_within_the_window() -> None:
    seen = Behaviour()
    assert [seen.retries("bot", "h1", t) for t in (0, 1, 2)] == [0, 1, 2]
    assert seen.retries("other", "h1", 3) == 0
    assert seen.retries("bot", "h2", 4) == 0
    assert seen.retries("bot", "h1", 2 + RETRY_WINDOW + 1) == 0  # the earlier ones aged out


def steady(seen: Behaviour, minutes: int, per_minute: int, action: str = "docs.read") -> float:
    """An agent's usual hour: `per_minute` calls of `action` each minute; the minute after."""
    for minute in range(minutes):
        for i in range(per_minute):
            seen.anomaly("bot", action, minute * 60 + i)
    return minutes * 60.0


def test_a_usual_call_is_not_anomalous_and_without_a_baseline_nothing_is() -> None:
    seen = Behaviour()
    assert seen.anomaly("bot", "payments.refund", 0) == 0.0  # no history yet
    now = steady(seen, 30, 5)
    assert seen.anomaly("bot", "docs.read", now) == 0.0


def test_an_action_the_agent_never_took_is_fully_anomalous() -> None:
    seen = Behaviour()
    now = steady(seen, 30, 5)
    assert seen.anomaly("bot", "payments.refund", now) == 1.0


def test_ten_times_the_usual_rate_is_fully_anomalous() -> None:
    seen = Behaviour()
    now = steady(seen, 30, 2)
    scores = [seen.anomaly("bot", "docs.read", now + i * 0.1) for i in range(25)]
    assert scores[0] == 0.0 and scores[5] > 0 and scores[-1] == 1.0
    assert scores == sorted(scores)


@pytest.mark.parametrize(("header", "expected"), [
    ("0.25", 0.25), ("1", 1.0), ("0", 0.0), (None, None), ("high", None), ("1.5", None),
    ("-0.1", None), ("nan", None),
])
def test_stated_confidence_is_a_number_from_zero_to_one(header: str | None,
                                                        expected: float | None) -> None:
    assert confidence(header) == expected
