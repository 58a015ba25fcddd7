"""Stage 2, the kill switch: a halt covering the call answers it at once.

Checked at CONNECT (agent, tenant, host) and again for every request, once the action type is
known, so an action-type halt stops calls inside tunnels that were opened before it was set;
and on every chunk of an open event stream (`HaltStreams`), which a new halt ends. A shadow
(a halt resumed in shadow mode) refuses writes only, with 403 `shadow`: the audit record keeps
what the policy would have decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from mitmproxy import http

from addons import meta
from addons.guard import answered, fail_closed, refuse, request_id
from gateway.audit import AuditLog
from gateway.background import Background
from gateway.halt_service import HaltService
from gateway.halts import Halt, is_write
from gateway.hostnames import normalise_host
from gateway.refusals import halted, shadowed

log = logging.getLogger("gatehouse.halts")


class HaltCheck:
    def __init__(self, halts: HaltService) -> None:
        self._halts = halts

    @fail_closed("halt")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if not answered(flow):
            self._check(flow, action=None)

    @fail_closed("halt")
    def request(self, flow: http.HTTPFlow) -> None:
        if not answered(flow):
            self._check(flow, action=flow.metadata.get(meta.ACTION, {}).get("type"))

    def _check(self, flow: http.HTTPFlow, action: str | None) -> None:
        write = action is not None and is_write(
            flow.request.method, flow.metadata.get(meta.ACTION, {}).get("tags", ()))
        halt = self._halts.board.match(
            agent=flow.metadata.get(meta.AGENT), tenant=flow.metadata.get(meta.TENANT),
            host=normalise_host(flow.request.host), action=action, write=write)
        if halt is not None:
            flow.metadata[meta.HALT_ID] = halt.id
            refusal = shadowed if halt.mode == "shadow" else halted
            refuse(flow, refusal(halt.id, halt.reason), "halt")


class HaltStreams:
    """A halt set while an event stream is open ends it: at its next chunk the agent gets one
    final `event: gatehouse` carrying the `halted` refusal, and nothing more of the upstream's
    stream. (mitmproxy cannot end a flow in transit from outside its stream callback, so an
    idle stream ends when the upstream next sends.)

    Runs after the scan stage, whose stream callback (if any) it wraps, so the check comes
    before the scan sees the chunk. An event stream nobody scans is streamed too, for the
    same reason: a buffered stream could not be halted at all."""

    def __init__(self, halts: HaltService, audit: AuditLog) -> None:
        self._halts = halts
        self._audit = audit
        self._background = Background(log)

    @fail_closed("halt")
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or meta.REFUSED_BY in flow.metadata:
            return
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "text/event-stream":
            return
        inner = response.stream if callable(response.stream) else None
        response.stream = self._halting(flow, inner)

    def _halting(self, flow: http.HTTPFlow,
                 inner: Callable[[bytes], bytes | Iterable[bytes]] | None
                 ) -> Callable[[bytes], list[bytes]]:
        action = flow.metadata.get(meta.ACTION, {}).get("type")
        ended = False

        def stream(chunk: bytes) -> list[bytes]:
            nonlocal ended
            if ended:
                return []
            halt = self._halts.board.match(agent=flow.metadata.get(meta.AGENT),
                                           tenant=flow.metadata.get(meta.TENANT),
                                           host=normalise_host(flow.request.host),
                                           action=action)
            if halt is None:
                if inner is None:
                    return [chunk] if chunk else []
                out = inner(chunk)
                return [out] if isinstance(out, bytes) else list(out)
            ended = True
            self._record(flow, halt)
            return [b"event: gatehouse\ndata: " + halted(halt.id, halt.reason).body(
                request_id(flow)) + b"\n\n"]

        return stream

    def _record(self, flow: http.HTTPFlow, halt: Halt) -> None:
        """The stream callback is not a coroutine: the record is appended in the background."""
        flow.metadata[meta.HALT_ID] = halt.id
        log.warning("halt %s ended the event stream of %s", halt.id, request_id(flow))
        self._background.spawn(self._audit.append("call.stream_halted", {
            "request_id": request_id(flow), "agent": flow.metadata.get(meta.AGENT),
            "action": flow.metadata.get(meta.ACTION, {}).get("type"), "halt_id": halt.id}),
            "auditing a halted stream")
