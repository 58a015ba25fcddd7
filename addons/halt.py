"""Stage 2, the kill switch: a halt covering the call answers it at once.

Checked at CONNECT (agent, tenant, host) and again for every request, once the action type is
known, so an action-type halt stops calls inside tunnels that were opened before it was set.
"""

from __future__ import annotations

from mitmproxy import http

from addons import meta
from addons.guard import answered, fail_closed, refuse
from gateway.halt_service import HaltService
from gateway.hostnames import normalise_host
from gateway.refusals import halted


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
        halt = self._halts.board.match(
            agent=flow.metadata.get(meta.AGENT), tenant=flow.metadata.get(meta.TENANT),
            host=normalise_host(flow.request.host), action=action)
        if halt is not None:
            flow.metadata[meta.HALT_ID] = halt.id
            refuse(flow, halted(halt.id, halt.reason), "halt")
