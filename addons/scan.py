"""Stage 8, scan the response: personal data in what comes back is passed, redacted or held.

The body is judged in a worker process (`gateway.scan.pool`), never on the event loop. Redacted:
the agent gets the body with each finding replaced by `<TYPE>` (decoded, `Content-Length` fixed).
Quarantined, or not scannable at all (too large, unknown encoding, analyzer error, time budget):
the response as received is kept as evidence and the agent gets 502 `quarantined` with its id.
Anything found is audited as `call.response`, with one line per field and entity type, and that
record is durable before the agent gets the body.

An event stream (`text/event-stream`: LLM APIs, MCP streamable HTTP) is scanned as it passes,
event by event (`gateway.scan.stream`), in the stream callback mitmproxy runs on the event loop:
a stop withholds the offending event and the rest, the stream ends with an `event: gatehouse`
saying why, and what was received is quarantined as evidence. Its `call.response` record is
written when the stream ends.

Responses Gatehouse wrote itself (refusals, released quarantines) are not scanned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from weakref import WeakKeyDictionary

from mitmproxy import http

from addons import meta
from addons.guard import fail_closed, refuse, request_id
from gateway.audit import AuditLog
from gateway.content import BODY_HEADERS
from gateway.metrics import Metrics
from gateway.policy_holder import PolicyHolder
from gateway.quarantine.service import Call, QuarantineService
from gateway.refusals import quarantined
from gateway.scan.pool import ScanPool, unscannable
from gateway.scan.redact import Outcome, Result, Verdict
from gateway.scan.settings import ScanSettings, settings_for
from gateway.scan.stream import Stop, StreamScanner, UnscannableStream

RESPONSE_HEADER = "X-Gatehouse-Response"  # `redacted` when the body was changed
MAX_EVENT_BYTES = 1024 * 1024


def _drop_body_headers(response: http.Response, keep: frozenset[str] | set[str] = frozenset()
                       ) -> None:
    """The body goes out decoded and changed: headers about the upstream's bytes go."""
    for name in BODY_HEADERS - keep:
        response.headers.pop(name, None)


def _never_empty(scanner: StreamScanner) -> Callable[[bytes], list[bytes]]:
    """mitmproxy sends each returned chunk as is, and an empty HTTP/1.1 chunk ends the body: a
    chunk that completes no event must send nothing at all."""
    def stream(chunk: bytes) -> list[bytes]:
        out = scanner(chunk)
        return [out] if out else []
    return stream


def _ours(flow: http.HTTPFlow) -> bool:
    return meta.REFUSED_BY in flow.metadata or meta.DELIVERED_FROM_QUARANTINE in flow.metadata


class ScanResponses:
    def __init__(self, policy: PolicyHolder, scanner: ScanPool, quarantine: QuarantineService,
                 audit: AuditLog, metrics: Metrics) -> None:
        self._policy = policy
        self._metrics = metrics
        self._scanner = scanner
        self._quarantine = quarantine
        self._audit = audit
        self._streams: WeakKeyDictionary[http.HTTPFlow, StreamScanner] = WeakKeyDictionary()

    def _settings(self, flow: http.HTTPFlow) -> ScanSettings | None:
        action = flow.metadata.get(meta.ACTION, {}).get("type", "")
        return settings_for(self._policy.current.model.responses, action)

    @fail_closed("scan")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or _ours(flow):
            return
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        settings = self._settings(flow) if media == "text/event-stream" else None
        if settings is None:
            return  # buffered whole by mitmproxy, then judged in `response`
        try:
            scanner = StreamScanner(settings, response.headers.get("content-encoding"),
                                    MAX_EVENT_BYTES, on_stop=lambda stop: self._stop(flow, stop))
        except UnscannableStream:
            return  # not streamed: buffered and judged whole, so an unknown encoding is held
        _drop_body_headers(response, keep={"transfer-encoding"})  # mitmproxy frames the stream
        response.stream = _never_empty(scanner)
        self._streams[flow] = scanner

    def _stop(self, flow: http.HTTPFlow, stop: Stop) -> dict[str, object]:
        """A stream was cut: keep what arrived as evidence; the agent gets the quarantine id."""
        scanner = self._streams[flow]
        assert flow.response is not None
        result = Result(Verdict(stop.outcome, stop.records), None, stop.note)
        item = self._quarantine.hold(
            self._call(flow), flow.response.status_code,
            [[k, v] for k, v in flow.response.headers.items(multi=True)],
            scanner.captured, result)
        flow.metadata[meta.QUARANTINE_ID] = item.id
        return {"quarantine_id": item.id, "request_id": request_id(flow)}

    @fail_closed("scan")
    async def response(self, flow: http.HTTPFlow) -> None:
        if (scanner := self._streams.pop(flow, None)) is not None:
            await self._record_stream(flow, scanner)
            return
        response = flow.response
        if response is None or not response.raw_content or _ours(flow):
            return
        settings = self._settings(flow)
        if settings is None:
            return
        started = time.perf_counter()
        result = await self._scanner.judge(
            response.raw_content or b"", response.headers.get("content-type"),
            response.headers.get("content-encoding"), settings)
        self._metrics.scan_seconds.observe(time.perf_counter() - started)
        self._metrics.responses_scanned.labels(str(result.outcome)).inc()
        if result.outcome is Outcome.REDACTED and not isinstance(result.body, bytes):
            result = unscannable("the scanner redacted the body but returned none")
        if result.outcome in (Outcome.QUARANTINE, Outcome.UNSCANNABLE):
            await self._hold(flow, response, result)
            return
        if result.records or result.outcome is not Outcome.PASS:
            await self._record(flow, result, None)
        if result.outcome is Outcome.REDACTED:
            assert isinstance(result.body, bytes)
            _drop_body_headers(response)
            response.content = result.body
            response.headers[RESPONSE_HEADER] = "redacted"

    async def _record_stream(self, flow: http.HTTPFlow, scanner: StreamScanner) -> None:
        stop = scanner.stopped
        records = tuple(scanner.records) + (stop.records if stop else ())
        result = Result(Verdict(scanner.outcome, records), None, stop.note if stop else None)
        self._metrics.responses_scanned.labels(str(result.outcome)).inc()
        if records or result.outcome is not Outcome.PASS:
            await self._record(flow, result, flow.metadata.get(meta.QUARANTINE_ID))

    @staticmethod
    def _call(flow: http.HTTPFlow) -> Call:
        return Call(agent=flow.metadata[meta.AGENT], request_id=request_id(flow),
                    request_hash=flow.metadata[meta.REQUEST_HASH],
                    action=flow.metadata.get(meta.ACTION, {}).get("type"),
                    method=flow.request.method, url=flow.request.pretty_url)

    async def _hold(self, flow: http.HTTPFlow, response: http.Response, result: Result) -> None:
        item = self._quarantine.hold(
            self._call(flow),
            response.status_code,
            [[k, v] for k, v in response.headers.items(multi=True)],
            response.raw_content or b"", result)
        flow.metadata[meta.QUARANTINE_ID] = item.id
        await self._record(flow, result, item.id)
        found = sorted({r["reason"] for r in result.records if r["action"] == "quarantined"})
        reason = (f"it contains {', '.join(found)}" if found
                  else f"it could not be scanned: {result.note}")
        refuse(flow, quarantined(item.id, reason), "scan")

    async def _record(self, flow: http.HTTPFlow, result: Result, quarantine_id: str | None) -> None:
        await self._audit.append("call.response", {
            "request_id": request_id(flow), "agent": flow.metadata.get(meta.AGENT),
            "action": flow.metadata.get(meta.ACTION, {}).get("type"),
            "status": flow.response.status_code if flow.response else None,
            "outcome": str(result.outcome), "note": result.note, "findings": result.records,
            "quarantine_id": quarantine_id})
