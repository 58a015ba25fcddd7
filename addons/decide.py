"""Stages 4-5, classify and decide: the call becomes an action, and policy decides on it.

Only the decision is recorded here; `enforce` answers the agent, after the halt check has had
its say, so a halt always wins over whatever policy would have done.
"""

from __future__ import annotations

import dataclasses
import time

from mitmproxy import http

from addons import meta
from addons.facts import call_from_flow
from addons.guard import answered, fail_closed, refuse
from gateway.autonomy import AutonomyService
from gateway.behaviour import CONFIDENCE_HEADER, Behaviour, confidence
from gateway.call import Call
from gateway.clock import utc_now
from gateway.content import UndecodableBody
from gateway.policy import Policy, classify, evaluate
from gateway.policy.decide import dlp_entities
from gateway.policy_holder import PolicyHolder
from gateway.refusals import denied
from gateway.request_hash import request_hash
from gateway.scan.pool import ScanPool
from gateway.scan.requests import request_entities


class Decide:
    """Classifies and decides; also feeds each call to `Behaviour`, whose signals (retries,
    anomaly) rules may match on, and which the audit record keeps."""

    def __init__(self, policy: PolicyHolder, scanner: ScanPool,
                 autonomy: AutonomyService) -> None:
        self._policy = policy
        self._scanner = scanner
        self._autonomy = autonomy
        self._behaviour = Behaviour()  # this gateway's view of each agent's recent calls

    @fail_closed("decide")
    async def request(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        try:
            call = call_from_flow(flow, flow.metadata[meta.AGENT])
        except UndecodableBody as e:
            refuse(flow, denied(f"the request body cannot be inspected: {e}", "inspection"),
                   "decide")
            return
        request = flow.request
        flow.metadata[meta.REQUEST_HASH] = request_hash(
            method=request.method, scheme=request.scheme, host=call.host, port=call.port,
            target=request.path, headers=request.headers.items(multi=True),
            body=request.raw_content or b"")
        policy = self._policy.current  # one snapshot for the scan and the decision
        if wanted := dlp_entities(policy):
            found = await request_entities(
                self._scanner, policy.model.responses, wanted, url=call.url,
                body=request.raw_content or b"", content_type=request.headers.get("content-type"),
                content_encoding=request.headers.get("content-encoding"))
            call = dataclasses.replace(call, request_entities=found)
            flow.metadata[meta.REQUEST_ENTITIES] = sorted(found) if found is not None else None
        call = self._signals(flow, policy, call)
        action, decision = evaluate(policy, call, utc_now())
        decision = self._autonomy.decide(decision, action, call.agent)
        flow.metadata[meta.ACTION] = {
            "type": action.type, "tags": sorted(action.tags), "params": action.params,
            "unreadable": sorted(action.unreadable),
            "entry": action.matched or action.type}
        flow.metadata[meta.DECISION] = {
            "verdict": decision.verdict.value,
            "rule_ids": list(decision.rule_ids),
            "reason": decision.reason,
            "snapshot_id": decision.snapshot_id,
            "tier": decision.tier,
            "route": decision.route,
            "rollback": decision.rollback,
            "timeout_seconds": decision.constraints.timeout_seconds,
            "max_request_body_bytes": decision.constraints.max_request_body_bytes,
            "shadow": [[rule, verdict.value] for rule, verdict in decision.shadow],
            "notify": decision.notify,
        }

    def _signals(self, flow: http.HTTPFlow, policy: Policy, call: Call) -> Call:
        now = time.monotonic()
        retries = self._behaviour.retries(call.agent, flow.metadata[meta.REQUEST_HASH], now)
        anomaly = self._behaviour.anomaly(call.agent, classify(policy, call).type, now)
        flow.metadata[meta.SIGNALS] = {
            "retries": retries, "anomaly": anomaly,
            "confidence": confidence(call.header(CONFIDENCE_HEADER))}
        return dataclasses.replace(call, retries=retries, anomaly=anomaly)
