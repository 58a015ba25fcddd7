"""The incident benchmark's parts, small: a halt refuses the next call, and the chain over a
generated trail finds the bad call, its review, and every side-effecting call of the agent."""

from __future__ import annotations

from tests.bench.bench_incidents import chain_and_report, halt_latency


def test_each_halt_round_ends_with_a_refused_call() -> None:
    assert len(halt_latency(2)) == 2  # each round asserts the 403 `halted` itself


def test_the_chain_over_a_generated_trail_is_complete() -> None:
    chain_seconds, report_seconds, events = chain_and_report(2000, 1)
    assert 0 < chain_seconds[0] <= report_seconds[0]
    assert events > 1000  # the incident agent's half of the trail, in its window
