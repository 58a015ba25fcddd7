"""Quarantine: hold a response as evidence, let reviewers release or discard it, deliver a
release to the agent's retry of the same call, exactly once.

A retry is matched like an approval: same agent, same request hash (the exact bytes of the
call). While the item is held, the retry gets the same 502 `quarantined` and the call is not
sent upstream again (no second side effect, no second copy of the data). A released item answers
the next retry with the stored response and is then spent; after that, or after a discard, the
call goes out as a new one.

Who may do what (the admin API checks it): every role sees an item and its redacted view; only
auditors and admins read the original, each read audited before it is served; reviewers,
responders and admins release as redacted or discard; only admins release the original (it puts
the personal data in the agent's hands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.audit import AuditLog
from gateway.clock import utc_now_iso
from gateway.content import BODY_HEADERS
from gateway.evidence import EvidenceStore
from gateway.quarantine.store import QuarantineItem, QuarantineStore, ReleaseAs, State
from gateway.tokens import Role

if TYPE_CHECKING:
    from gateway.scan.redact import Result



class QuarantineRefused(Exception):
    """A reviewer action that cannot be done; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Call:
    """The call whose response is held: who made it, its exact request hash, where it went."""

    agent: str
    request_id: str
    request_hash: str
    action: str | None
    method: str
    url: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: list[list[str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Retry:
    """What a retry of a quarantined call gets: still held, or the released response."""

    item: QuarantineItem
    response: StoredResponse | None  # None: still held


class QuarantineService:
    def __init__(self, store: QuarantineStore, evidence: EvidenceStore,
                 audit: AuditLog) -> None:
        self.store = store
        self.evidence = evidence
        self.audit = audit
        # (agent, request hash) of items a retry could still meet: every call checks, and
        # almost none has one, so this spares the database a query per call
        self._open = {(i.agent, i.request_hash) for i in store.open_items()}

    def hold(self, call: Call, status: int, headers: list[list[str]], raw_body: bytes,
             result: Result) -> QuarantineItem:
        """Keep the response as received and its redacted view; the caller audits the call."""
        original = self.evidence.put(raw_body)
        redacted = self.evidence.put(result.body) if isinstance(result.body, bytes) else None
        item = QuarantineItem(
            id=QuarantineItem.new_id(), created_at=utc_now_iso(), agent=call.agent,
            request_id=call.request_id, request_hash=call.request_hash, action=call.action,
            method=call.method, url=call.url, status=status, headers=headers,
            original=original, redacted=redacted, outcome=str(result.outcome), note=result.note,
            records=result.records)
        self.store.add(item)
        self._open.add((item.agent, item.request_hash))
        return item

    def get(self, item_id: str) -> QuarantineItem:
        item = self.store.get(item_id)
        if item is None:
            raise QuarantineRefused(404, "not_found", f"no quarantined response `{item_id}`")
        return item

    def redacted_body(self, item: QuarantineItem) -> bytes | None:
        return self.evidence.get(item.redacted) if item.redacted else None

    async def read_original(self, item: QuarantineItem, reader: str,
                            role: Role) -> StoredResponse:
        """The response as received; the read is on the audit trail before it is served."""
        body = self.evidence.get(item.original)
        await self.audit.append("quarantine.original_read", {
            "quarantine_id": item.id, "request_id": item.request_id, "agent": item.agent,
            "by": reader, "role": str(role), "original": f"sha256:{item.original}"})
        return StoredResponse(item.status, item.headers, body)

    async def release(self, item_id: str, release_as: ReleaseAs, reason: str,
                      by: str) -> QuarantineItem:
        item = self.get(item_id)
        if release_as is ReleaseAs.REDACTED and item.redacted is None:
            raise QuarantineRefused(
                409, "conflict", f"`{item_id}` could not be scanned ({item.note}), so it has no "
                "redacted view; an admin may release the original, or discard it")
        return await self._decide(item_id, State.RELEASED, release_as, reason, by)

    async def discard(self, item_id: str, reason: str, by: str) -> QuarantineItem:
        return await self._decide(item_id, State.DISCARDED, None, reason, by)

    async def _decide(self, item_id: str, to: State, release_as: ReleaseAs | None, reason: str,
                      by: str) -> QuarantineItem:
        allowed = (State.HELD,) if to is State.RELEASED else (State.HELD, State.RELEASED)
        item = self.store.decide(item_id, to=to, released_as=release_as, by=by,
                                 at=utc_now_iso(), reason=reason, from_states=allowed)
        if item is None:
            current = self.get(item_id)
            raise QuarantineRefused(409, "conflict",
                                    f"`{item_id}` is already {current.state}")
        await self.audit.append(f"quarantine.{'released' if release_as else 'discarded'}", {
            "quarantine_id": item.id, "request_id": item.request_id, "agent": item.agent,
            "action": item.action, "as": release_as and str(release_as), "by": by,
            "reason": reason})
        return item

    async def retry(self, agent: str, request_hash: str, request_id: str) -> Retry | None:
        """A retry of a quarantined call: held → still held; released → delivered once."""
        if (agent, request_hash) not in self._open:
            return None
        item = self.store.latest_for(agent, request_hash)
        if item is None or item.state in (State.DELIVERED, State.DISCARDED):
            self._open.discard((agent, request_hash))
            return None
        if item.state is State.HELD:
            return Retry(item, None)
        response = self._released_response(item)
        delivered = self.store.deliver(item.id, at=utc_now_iso(), request_id=request_id)
        if delivered is None:  # another retry took it meanwhile, or it was discarded
            return None
        try:
            await self.audit.append("quarantine.delivered", {
                "quarantine_id": item.id, "request_id": request_id, "agent": agent,
                "as": item.released_as and str(item.released_as)})
        except Exception:
            self.store.undeliver(item.id)  # not delivered unrecorded; the next retry gets it
            raise
        return Retry(delivered, response)

    def _released_response(self, item: QuarantineItem) -> StoredResponse:
        if item.released_as is ReleaseAs.ORIGINAL:
            return StoredResponse(item.status, item.headers, self.evidence.get(item.original))
        body = self.redacted_body(item) or b""
        headers = [[k, v] for k, v in item.headers if k.lower() not in BODY_HEADERS]
        return StoredResponse(item.status, headers, body)
