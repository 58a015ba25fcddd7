"""Stage 6a, quarantine retry: a retried call whose response is quarantined is not sent again.

Matched like an approval, by agent and exact request hash. Still held: the same 502
`quarantined`. Released by a reviewer: the stored response (redacted or original, as released)
answers this retry, once, and the call never reaches the upstream a second time. This runs after
the halt check and the policy's answer, so a halt or a deny still wins.
"""

from __future__ import annotations

from mitmproxy import http

from addons import meta
from addons.guard import answered, fail_closed, refuse, request_id
from gateway.quarantine.service import QuarantineService, StoredResponse
from gateway.refusals import quarantined


class QuarantineRetry:
    def __init__(self, quarantine: QuarantineService) -> None:
        self._quarantine = quarantine

    @fail_closed("quarantine")
    async def request(self, flow: http.HTTPFlow) -> None:
        if answered(flow) or meta.REQUEST_HASH not in flow.metadata:
            return
        retry = await self._quarantine.retry(flow.metadata[meta.AGENT],
                                             flow.metadata[meta.REQUEST_HASH], request_id(flow))
        if retry is None:
            return
        flow.metadata[meta.QUARANTINE_ID] = retry.item.id
        if retry.response is None:
            refuse(flow, quarantined(retry.item.id, "still held for review"), "quarantine")
            return
        flow.response = stored_response(retry.response)
        flow.metadata[meta.DELIVERED_FROM_QUARANTINE] = str(retry.item.released_as)


def stored_response(stored: StoredResponse) -> http.Response:
    """The stored bytes exactly, under the stored headers (its Content-Encoding still applies)."""
    response = http.Response.make(stored.status, b"", [
        (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for k, v in stored.headers])
    response.raw_content = stored.body
    if "transfer-encoding" not in response.headers:
        response.headers["content-length"] = str(len(stored.body))
    return response
