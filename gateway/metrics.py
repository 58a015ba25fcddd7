"""Prometheus metrics, in a registry of Gatehouse's own (no process-global state).

Label values come from the policy and the admin tokens, never from what an agent sends, so
their number stays bounded: routes are reviewer groups (`-` for none), tiers are the policy's,
and a reviewer is labelled by name only when a policy group lists them (`other` otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)
HUMAN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
NO_ROUTE = "-"
OTHER_REVIEWER = "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "gatehouse_decisions", "Calls decided, by outcome, action type and rule.",
            ["decision", "action", "rule"], registry=self.registry)
        self.decision_seconds = Histogram(
            "gatehouse_decision_seconds",
            "Time Gatehouse spent on a call before forwarding or refusing it (audit included).",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.halts_active = Gauge("gatehouse_halts_active", "Halts in force.",
                                  registry=self.registry)
        self.audit_failures = Counter("gatehouse_audit_failures",
                                      "Audit appends that failed (the call was refused).",
                                      registry=self.registry)
        self.responses_scanned = Counter(
            "gatehouse_responses_scanned",
            "Response bodies scanned, by outcome (pass, redacted, quarantine, unscannable).",
            ["outcome"], registry=self.registry)
        self.scan_seconds = Histogram(
            "gatehouse_scan_seconds",
            "Time from handing a buffered body to the scanning workers to their verdict.",
            buckets=LATENCY_BUCKETS + (2.5, 5.0, 10.0), registry=self.registry)

        self.incidents_opened = Counter(
            "gatehouse_incidents_opened", "Incidents opened, by severity and by whom "
            "(`responder` or `trigger`).", ["severity", "source"], registry=self.registry)
        self.containment_seconds = Histogram(
            "gatehouse_incident_containment_seconds",
            "Time from opening an incident to its containment (the halt in force).",
            ["severity"], buckets=LATENCY_BUCKETS + (2.5, 5.0, 10.0, 60.0),
            registry=self.registry)
        self.triggers_fired = Counter("gatehouse_triggers_fired",
                                      "Automatic containments, by the policy's trigger id.",
                                      ["trigger"], registry=self.registry)

        self.approval_wait_seconds = Histogram(
            "gatehouse_approval_wait_seconds",
            "Time from holding a call to its decision (approved, denied or expired).",
            ["route", "tier"], buckets=HUMAN_BUCKETS, registry=self.registry)
        self.decision_wait_seconds = Histogram(
            "gatehouse_approval_decision_seconds",
            "Time from holding a call to its decision, by the policy's action entry and the "
            "outcome (approved, denied, expired).", ["action", "outcome"],
            buckets=HUMAN_BUCKETS, registry=self.registry)
        self.escalation_outcomes = Counter(
            "gatehouse_escalation_outcomes",
            "Escalated held calls, by how they ended (approved, denied, expired).",
            ["outcome"], registry=self.registry)
        self.approvals_open = Gauge("gatehouse_approvals_open",
                                    "Held calls waiting for a decision, by route.", ["route"],
                                    registry=self.registry)
        self.review_seconds = Histogram(
            "gatehouse_review_seconds",
            "Time from a reviewer's first opening of an item to their vote on it.",
            ["reviewer"], buckets=HUMAN_BUCKETS, registry=self.registry)

    def observe_wait(self, route: str | None, tier: int, seconds: float, *, action: str,
                     outcome: str, escalated: bool) -> None:
        self.approval_wait_seconds.labels(route or NO_ROUTE, str(tier)).observe(seconds)
        self.decision_wait_seconds.labels(action, outcome).observe(seconds)
        if escalated:
            self.escalation_outcomes.labels(outcome).inc()

    def observe_review(self, reviewer: str, groups: Mapping[str, Iterable[str]],
                       seconds: float) -> None:
        known = any(reviewer in members for members in groups.values())
        self.review_seconds.labels(reviewer if known else OTHER_REVIEWER).observe(seconds)

    def set_open(self, counts: Mapping[str | None, int], routes: Iterable[str]) -> None:
        """Open items per route, zero for the policy's routes that have none."""
        self.approvals_open.clear()
        for route in routes:
            self.approvals_open.labels(route).set(0)
        for route, count in counts.items():
            self.approvals_open.labels(route or NO_ROUTE).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
