"""Decision-time metrics: by action and outcome, and how escalated items end."""

from __future__ import annotations

from gateway.metrics import Metrics


def test_a_decided_item_is_timed_by_action_and_outcome_and_escalations_counted() -> None:
    metrics = Metrics()
    metrics.observe_wait("ops", 2, 42.0, action="payments.refund", outcome="approved",
                         escalated=False)
    metrics.observe_wait(None, 1, 900.0, action="other", outcome="expired", escalated=True)
    text = metrics.render().decode()
    assert ('gatehouse_approval_decision_seconds_count{action="payments.refund",'
            'outcome="approved"} 1.0') in text
    assert 'gatehouse_approval_wait_seconds_count{route="ops",tier="2"} 1.0' in text
    assert 'gatehouse_escalation_outcomes_total{outcome="expired"} 1.0' in text
    assert 'gatehouse_escalation_outcomes_total{outcome="approved"}' not in text
