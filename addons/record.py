"""Stage 9, evidence for incidents: what came back, where it matters for a reconstruction.

A call whose bodies were kept (`addons.evidence`) gets a `call.evidence` record naming the files:
request, response as received, and the redacted response the agent got, if any. Three kinds
of forwarded call leave a record of what they mean, all written before the agent gets the
response (if one cannot be written the agent gets 503, as for every record):

- a model call (OpenAI- or Anthropic-style) → `call.llm`: model, temperature, the tools
  offered and the tool calls in the answer (`gateway.llm`);
- a document fetched (a text page read with GET) → `call.document`: its hash, size, and any
  instruction-like text in it (`gateway.documents`); a flagged document is kept as evidence;
- a side-effecting call that succeeded → `call.result`: the ids its response handed back, for
  the rollback inventory (`gateway.rollback`).

Bodies are decoded with the same cap as the scanner's; one that cannot be decoded is recorded
as such rather than guessed at.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from mitmproxy import http

from addons import meta
from addons.guard import fail_closed, refuse, request_id
from addons.scan import RESPONSE_HEADER
from gateway.audit import AuditError, AuditLog
from gateway.content import UndecodableBody, decode_body
from gateway.documents import instruction_flags, is_document
from gateway.evidence import EvidenceStore, envelope
from gateway.llm import is_model_call, read_model_call
from gateway.refusals import gateway_error
from gateway.rollback import result_ids

log = logging.getLogger("gatehouse.record")

MAX_BODY_BYTES = 8 * 1024 * 1024
READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


class RecordEvidence:
    def __init__(self, audit: AuditLog, evidence: EvidenceStore) -> None:
        self._audit = audit
        self._evidence = evidence

    @fail_closed("record")
    async def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or meta.DELIVERED_FROM_QUARANTINE in flow.metadata:
            return
        records = []
        if (kept := flow.metadata.get(meta.EVIDENCE)) is not None:
            records.append(("call.evidence", await self._kept(response, kept)))
        if meta.REFUSED_BY not in flow.metadata and (found := self._found(flow)) is not None:
            records.append(found)
        for event, fields in records:
            try:
                await self._audit.append(event, {
                    "request_id": request_id(flow), "agent": flow.metadata.get(meta.AGENT),
                    "action": flow.metadata.get(meta.ACTION, {}).get("type"),
                    "url": flow.request.pretty_url, "status": response.status_code, **fields})
            except AuditError as e:
                log.error("could not record %s for %s: %s", event, request_id(flow), e)
                refuse(flow, gateway_error("the audit record could not be written"), "record")
                return

    async def _kept(self, response: http.Response, kept: dict[str, object]
                    ) -> dict[str, object]:
        """The evidence files of this call; a redacted response is kept beside the original."""
        redacted = None
        if response.headers.get(RESPONSE_HEADER) == "redacted" and kept.get("response"):
            redacted = await asyncio.get_running_loop().run_in_executor(
                None, self._evidence.put, envelope(
                    {"status": response.status_code}, list(response.headers.items(multi=True)),
                    response.raw_content or b""))
        return {"evidence": {**kept, "redacted_response": redacted}}

    def _found(self, flow: http.HTTPFlow) -> tuple[str, dict[str, object]] | None:
        """A model call, a document read, or the ids a side-effecting call handed back."""
        request, response = flow.request, flow.response
        assert response is not None
        streamed = bool(response.stream)
        if is_model_call(request.path, request.method):
            fields = self._model_call(flow, streamed)
            return ("call.llm", fields) if fields is not None else None
        if is_document(response.headers.get("content-type"), request.method) and not streamed:
            return "call.document", self._document(response)
        if request.method not in READ_ONLY and 200 <= response.status_code < 300 and (
                not streamed):
            body = self._body(response)
            ids = result_ids(body) if body else {}
            return ("call.result", {"ids": ids}) if ids else None
        return None

    def _model_call(self, flow: http.HTTPFlow, streamed: bool) -> dict[str, object] | None:
        assert flow.response is not None
        answer = None if streamed else self._body(flow.response)
        call = read_model_call(flow.request.path, flow.request.content or b"", answer)
        if call is None:
            return None
        return {**call.to_json(), "streamed": streamed}

    def _document(self, response: http.Response) -> dict[str, object]:
        body = self._body(response)
        if body is None:
            return {"sha256": None, "bytes": None, "instruction_like": [],
                    "note": "the body could not be decoded"}
        flags = instruction_flags(body.decode("utf-8", "replace"))
        digest = self._evidence.put(body) if flags else hashlib.sha256(body).hexdigest()
        return {"sha256": digest, "bytes": len(body), "instruction_like": flags,
                "content_type": response.headers.get("content-type"), "kept": bool(flags)}

    @staticmethod
    def _body(response: http.Response) -> bytes | None:
        try:
            return decode_body(response.raw_content or b"",
                               response.headers.get("content-encoding"), MAX_BODY_BYTES)
        except UndecodableBody:
            return None
