"""Prometheus metrics, in a registry of Gatehouse's own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
