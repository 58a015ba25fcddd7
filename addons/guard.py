"""Fail closed: every hook catches its own errors and refuses the call.

mitmproxy logs an addon's exception and lets the flow go on, which in a gateway would forward a
call nobody decided. `@fail_closed("stage")` wraps a hook so that an exception becomes a
503 `gateway_error` refusal (recorded by the audit stage) instead.
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from mitmproxy import http

from addons import meta
from gateway.refusals import Refusal, gateway_error

log = logging.getLogger("gatehouse")

Hook = TypeVar("Hook", bound=Callable[..., Any])


def request_id(flow: http.HTTPFlow) -> str:
    """The id the agent sees in `X-Gatehouse-Request-Id`, created on first use."""
    rid = flow.metadata.get(meta.REQUEST_ID)
    if rid is None:
        rid = flow.metadata[meta.REQUEST_ID] = "req_" + uuid.uuid4().hex
    return rid


def answered(flow: http.HTTPFlow) -> bool:
    """True when an earlier stage (or the upstream) already settled this flow."""
    return flow.response is not None or flow.error is not None or not flow.live


def refuse(flow: http.HTTPFlow, refusal: Refusal, stage: str) -> None:
    rid = request_id(flow)
    flow.response = http.Response.make(refusal.status, refusal.body(rid),
                                       refusal.all_headers(rid))
    flow.metadata[meta.REFUSED_BY] = stage
    flow.metadata[meta.REFUSAL] = refusal.error_type
    flow.metadata[meta.REFUSAL_REASON] = refusal.fields.get("reason") or refusal.message


def _refuse_on_error(flow: http.HTTPFlow, stage: str, error: Exception) -> None:
    log.exception("%s stage failed; refusing the call", stage)
    flow.metadata[meta.ERROR] = f"{stage}: {type(error).__name__}: {error}"
    try:
        refuse(flow, gateway_error(f"internal error in the {stage} stage"), stage)
    except Exception:  # even building the refusal failed: cut the connection
        flow.kill()


def fail_closed(stage: str) -> Callable[[Hook], Hook]:
    """Wrap a flow hook (sync or async) so any exception refuses the flow."""

    def wrap(hook: Hook) -> Hook:
        if inspect.iscoroutinefunction(hook):
            @functools.wraps(hook)
            async def run_async(self: object, flow: http.HTTPFlow) -> None:
                try:
                    await hook(self, flow)
                except Exception as e:
                    _refuse_on_error(flow, stage, e)
            return run_async  # type: ignore[return-value]

        @functools.wraps(hook)
        def run(self: object, flow: http.HTTPFlow) -> None:
            try:
                hook(self, flow)
            except Exception as e:
                _refuse_on_error(flow, stage, e)
        return run  # type: ignore[return-value]

    return wrap

