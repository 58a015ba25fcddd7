"""Stage 5, enforce: refuse what policy denied, and apply the constraints of a constrained
allow. `require_approval` is the hold stage's."""

from __future__ import annotations

import asyncio
import logging
from weakref import WeakKeyDictionary

from mitmproxy import http

from addons import meta
from addons.connections import cut
from addons.guard import answered, fail_closed, refuse
from gateway.refusals import denied

log = logging.getLogger("gatehouse.enforce")


class Enforce:
    def __init__(self) -> None:
        self._deadlines: WeakKeyDictionary[http.HTTPFlow, asyncio.TimerHandle] = (
            WeakKeyDictionary())

    @fail_closed("enforce")
    def request(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        decision = flow.metadata[meta.DECISION]
        verdict = decision["verdict"]
        rules = decision["rule_ids"]
        if verdict == "deny":
            refuse(flow, denied(decision["reason"], rules[0] if rules else None), "enforce")
        elif verdict == "require_approval":
            return  # the hold stage's
        elif verdict == "allow_with_constraints":
            self._constrain(flow, decision)
        elif verdict != "allow":
            raise ValueError(f"unknown verdict {verdict!r}")

    def _constrain(self, flow: http.HTTPFlow, decision: dict[str, object]) -> None:
        limit = decision.get("max_request_body_bytes")
        size = len(flow.request.raw_content or b"")
        if isinstance(limit, int) and size > limit:
            rules = decision["rule_ids"]
            refuse(flow, denied(f"the request body is {size} bytes; the rule allows at most "
                                f"{limit}", rules[0] if rules else None), "enforce")  # type: ignore[index]
            return
        if timeout := decision.get("timeout_seconds"):
            self._deadlines[flow] = asyncio.get_running_loop().call_later(
                float(timeout), self._time_out, flow)  # type: ignore[arg-type]

    def _time_out(self, flow: http.HTTPFlow) -> None:
        """Close the upstream connection: marking the flow killed would only be noticed when
        the late response arrived. mitmproxy then answers the agent with an error."""
        if flow.response is not None or not flow.live:
            return
        log.warning("constraint timeout: cutting %s", flow.request.pretty_url)
        cut(flow, flow.server_conn)

    def response(self, flow: http.HTTPFlow) -> None:
        if (handle := self._deadlines.pop(flow, None)) is not None:
            handle.cancel()

    error = response
