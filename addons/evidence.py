"""Evidence of each decided call, as the policy's `evidence.keep` asks: the request as it
arrived (credentials already removed) and the response as the upstream sent it, before the
scan redacts anything, kept as content-addressed files (`gateway.evidence`).

Runs before the scan stage so the original response is what is kept; the record that links the
files to the call (`call.evidence`, with the redacted copy when there is one) is written after
the scan, by `addons.record`. `on_hold` keeps the calls a person reviewed; `always` keeps every
call, refused ones included (their request only); a streamed response is not kept (its body
passes chunk by chunk and is never whole here).
"""

from __future__ import annotations

import asyncio

from mitmproxy import http

from addons import meta
from addons.guard import fail_closed
from gateway.evidence import EvidenceStore, envelope
from gateway.policy_holder import PolicyHolder


class KeepEvidence:
    def __init__(self, policy: PolicyHolder, evidence: EvidenceStore) -> None:
        self._policy = policy
        self._evidence = evidence

    @fail_closed("evidence")
    async def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or meta.DELIVERED_FROM_QUARANTINE in flow.metadata:
            return
        action = flow.metadata.get(meta.ACTION, {}).get("type") or ""
        keep = self._policy.current.model.evidence.keep_for(action)
        if keep == "never" or (keep == "on_hold" and meta.PENDING_ID not in flow.metadata):
            return
        request, response = flow.request, flow.response
        files = [envelope({"method": request.method, "url": request.pretty_url},
                          list(request.headers.items(multi=True)), request.raw_content or b"")]
        ours = meta.REFUSED_BY in flow.metadata
        if not ours and not response.stream:
            files.append(envelope({"status": response.status_code},
                                  list(response.headers.items(multi=True)),
                                  response.raw_content or b""))
        loop = asyncio.get_running_loop()
        digests = [await loop.run_in_executor(None, self._evidence.put, f) for f in files]
        flow.metadata[meta.EVIDENCE] = {
            "request": digests[0], "response": digests[1] if len(digests) > 1 else None,
            "keep": keep}
