"""The whole policy step for one call, as the proxy and `gatehouse test` run it."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from gateway.call import Action, Call
from gateway.policy.classify import UNCLASSIFIED, classify
from gateway.policy.decide import decide
from gateway.policy.snapshot import Policy
from gateway.policy.verdict import Decision, Verdict


def evaluate(policy: Policy, call: Call, now: datetime) -> tuple[Action, Decision]:
    """Egress allowlist first, then classification, then the decision."""
    if policy.egress_allows(call.host, call.port):
        action = classify(policy, call)
        return action, decide(policy, action, call, now)
    refusal = egress_refusal(policy, call)
    if not policy.shadow_mode:
        return Action(type=UNCLASSIFIED), refusal
    action = classify(policy, call)
    decision = decide(policy, action, call, now)
    return action, dataclasses.replace(
        decision,
        reason=f"the policy is in shadow mode; it would have decided deny: {refusal.reason}",
        shadow=(("egress", Verdict.DENY), *decision.shadow),
    )


def egress_refusal(policy: Policy, call: Call) -> Decision:
    """The denial for a destination outside `egress.allow`, naming host (and port)."""
    if policy.egress.knows(call.host):
        reason = f"port {call.port} of host `{call.host}` is not in the egress allowlist"
    else:
        reason = f"host `{call.host}` is not in the egress allowlist"
    return Decision(
        verdict=Verdict.DENY,
        rule_ids=("egress",),
        matched_rule_ids=("egress",),
        reason=reason,
        snapshot_id=policy.snapshot_id,
    )
