"""Stage 9, audit: one hash-chained record per decided call, durable before it is forwarded.

This is the last request hook, so every other stage has had its say: the record carries the
outcome the agent gets (forwarded, or refused and by which stage). The append is awaited; if it
fails the call is refused with 503 `gateway_error`, never forwarded unrecorded. A recorded call
that a `notify: true` rule let through is announced to the reviewers' webhooks
(`gateway.approvals.playbook`).
"""

from __future__ import annotations

import logging
import time

from mitmproxy import http

from addons import meta
from addons.guard import fail_closed, refuse, request_id
from gateway.approvals.notify import Notifier
from gateway.approvals.playbook import notify_allowed
from gateway.audit import AuditError, AuditLog
from gateway.metrics import Metrics
from gateway.policy_holder import PolicyHolder
from gateway.refusals import DECISION_HEADER, REQUEST_ID_HEADER, gateway_error
from gateway.sampling import FirstSeen, Sampler

log = logging.getLogger("gatehouse.audit")

MAX_PARAM_CHARS = 1024  # parameter values are evidence, not storage: long ones are cut


class Audit:
    def __init__(self, audit: AuditLog, metrics: Metrics, notifier: Notifier,
                 policy: PolicyHolder) -> None:
        self._audit = audit
        self._metrics = metrics
        self._notifier = notifier
        self._policy = policy
        self._first_seen = FirstSeen(audit.query)
        self._sampler: tuple[str, Sampler] | None = None  # for the snapshot it was built from

    @fail_closed("audit")
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata[meta.STARTED] = time.perf_counter()

    @fail_closed("audit")
    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:  # only a refused CONNECT is a decision of its own
            await self._record(flow)

    @fail_closed("audit")
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.error is None and flow.live:
            await self._record(flow)

    @fail_closed("audit")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Label the upstream's answer here too: a streamed body goes out after this hook."""
        self.response(flow)

    @fail_closed("audit")
    def response(self, flow: http.HTTPFlow) -> None:
        if meta.REFUSED_BY not in flow.metadata and flow.response is not None:
            flow.response.headers[REQUEST_ID_HEADER] = request_id(flow)
            flow.response.headers[DECISION_HEADER] = outcome(flow)

    @fail_closed("audit")
    async def error(self, flow: http.HTTPFlow) -> None:
        """A forwarded call that failed (upstream error, or cut by a timeout constraint)."""
        if meta.REFUSED_BY not in flow.metadata and flow.error is not None:
            try:
                await self._audit.append("call.failed", {
                    "request_id": request_id(flow), "agent": flow.metadata.get(meta.AGENT),
                    "action": flow.metadata.get(meta.ACTION, {}).get("type"),
                    "error": flow.error.msg})
            except AuditError as e:
                log.error("audit append failed for a failed call: %s", e)

    async def _record(self, flow: http.HTTPFlow) -> None:
        record = audit_record(flow)
        try:
            await self._audit.append("call.decided", record)
        except AuditError as e:
            log.error("audit append failed, refusing %s: %s", record["request_id"], e)
            self._metrics.audit_failures.inc()
            flow.metadata[meta.ERROR] = f"audit: {e}"
            refuse(flow, gateway_error("the audit record could not be written"), "audit")
            return
        notify_allowed(self._notifier, record,
                       asked=bool(flow.metadata.get(meta.DECISION, {}).get("notify")))
        await self._sample(record)
        rules = record["rule_ids"] or ["-"]
        # label by the policy's action entry (`mcp.{tool}`), never the agent-chosen expansion
        entry = flow.metadata.get(meta.ACTION, {}).get("entry") or "-"
        for rule in rules:
            self._metrics.decisions.labels(record["decision"], entry, rule).inc()
        if started := flow.metadata.get(meta.STARTED):
            self._metrics.decision_seconds.observe(time.perf_counter() - started)


    async def _sample(self, record: dict[str, object]) -> None:
        """Draw the call for a post-execution review (`gateway.sampling`) if it is one."""
        policy = self._policy.current
        if self._sampler is None or self._sampler[0] != policy.snapshot_id:
            self._sampler = (policy.snapshot_id,
                             Sampler(policy.model.sampling, self._first_seen))
        if (reason := self._sampler[1].why(record)) is not None:
            await self._audit.append("sample.drawn", {
                key: record.get(key) for key in ("request_id", "agent", "action", "url",
                                                 "params")} | {"reason": reason})


def outcome(flow: http.HTTPFlow) -> str:
    """What happened to the call, in one word: the refusal type, or the policy's verdict."""
    if refusal := flow.metadata.get(meta.REFUSAL):
        return str(refusal)
    if meta.APPROVED_BY in flow.metadata:
        return "approved"
    if meta.DELIVERED_FROM_QUARANTINE in flow.metadata:
        return "quarantine_released"
    return flow.metadata.get(meta.DECISION, {}).get("verdict", "allow")


def audit_record(flow: http.HTTPFlow) -> dict[str, object]:
    action = flow.metadata.get(meta.ACTION, {})
    decision = flow.metadata.get(meta.DECISION, {})
    request = flow.request
    return {
        "request_id": request_id(flow),
        "agent": flow.metadata.get(meta.AGENT),
        "tenant": flow.metadata.get(meta.TENANT),
        "client": _address(flow.client_conn.peername),
        "method": request.method,
        "url": request.pretty_url if request.method != "CONNECT" else
        f"{request.host}:{request.port}",
        "request_hash": flow.metadata.get(meta.REQUEST_HASH),
        "action": action.get("type"),
        "tags": action.get("tags", []),
        "params": {k: _bounded(v) for k, v in action.get("params", {}).items()},
        "unreadable_params": action.get("unreadable", []),
        "request_entities": flow.metadata.get(meta.REQUEST_ENTITIES),
        "signals": flow.metadata.get(meta.SIGNALS),
        "decision": outcome(flow),
        "verdict": decision.get("verdict"),
        "rule_ids": decision.get("rule_ids", []),
        "reason": flow.metadata.get(meta.REFUSAL_REASON) or decision.get("reason"),
        "snapshot_id": decision.get("snapshot_id"),
        "constraints": {k: decision[k] for k in ("timeout_seconds", "max_request_body_bytes")
                        if decision.get(k) is not None},
        "shadow": decision.get("shadow", []),
        "refused_by": flow.metadata.get(meta.REFUSED_BY),
        "halt_id": flow.metadata.get(meta.HALT_ID),
        "pending_id": flow.metadata.get(meta.PENDING_ID),
        "quarantine_id": flow.metadata.get(meta.QUARANTINE_ID),
        "approved_by": flow.metadata.get(meta.APPROVED_BY),
        "dialled": flow.metadata.get(meta.DIALLED),
        "error": flow.metadata.get(meta.ERROR),
    }


def _address(peername: tuple[str, int] | None) -> str | None:
    return f"{peername[0]}:{peername[1]}" if peername else None


def _bounded(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_PARAM_CHARS:
        return value[:MAX_PARAM_CHARS] + "…"
    return value
