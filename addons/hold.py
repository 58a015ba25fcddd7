"""Stage 6, hold: a call that needs approval waits for a reviewer, then goes out as approved.

The exact request (method, URL, headers without credentials, body) is stored under its hash,
and the agent's connection is held for `approvals.hold_seconds`. Approved while it waits: the
stored request is forwarded, once. Still pending: 503 `approval_pending` with the pending id;
a byte-identical retry attaches to the same item and passes once it is approved. Denied,
expired or halted: a clear 403.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import parse_qsl
from weakref import WeakKeyDictionary

from mitmproxy import connection, http

from addons import meta
from addons.guard import answered, fail_closed, refuse, request_id
from gateway.approvals.grant_service import GrantService
from gateway.approvals.model import HeldRequest, PendingItem, State
from gateway.approvals.review import APPROVE
from gateway.approvals.service import ApprovalService, retry_after
from gateway.call import Action
from gateway.clock import utc_now
from gateway.halt_service import HaltService
from gateway.halts import is_write
from gateway.hostnames import normalise_host
from gateway.refusals import (
    approval_denied,
    approval_expired,
    approval_pending,
    denied,
    halted,
    shadowed,
)

HELD_BODY_LIMIT = 1024 * 1024
MAX_OPEN_PER_AGENT = 100


def action_of(flow: http.HTTPFlow) -> Action:
    action = flow.metadata[meta.ACTION]
    return Action(type=action["type"], tags=frozenset(action["tags"]), params=action["params"],
                  unreadable=frozenset(action.get("unreadable", ())))


def held_request(flow: http.HTTPFlow) -> HeldRequest:
    request = flow.request
    path, _, query = request.path.partition("?")
    return HeldRequest(
        method=request.method, scheme=request.scheme, host=normalise_host(request.host),
        port=request.port, path=path or "/",
        query=tuple(parse_qsl(query, keep_blank_values=True, errors="surrogateescape")),
        headers=tuple((k, v) for k, v in request.headers.items(multi=True)
                      if k.lower() != "proxy-authorization"),
        body=request.raw_content or b"")


def forward_as_approved(flow: http.HTTPFlow, held: HeldRequest) -> None:
    """What goes out is what the reviewer saw: the stored headers and body, not the retry's."""
    flow.request.headers = http.Headers([(k.encode("utf-8", "surrogateescape"),
                                          v.encode("utf-8", "surrogateescape"))
                                         for k, v in held.headers])
    flow.request.raw_content = held.body


class Hold:
    def __init__(self, approvals: ApprovalService, grants: GrantService,
                 halts: HaltService) -> None:
        self._approvals = approvals
        self._grants = grants
        self._halts = halts
        self._gone: WeakKeyDictionary[connection.Client, asyncio.Event] = WeakKeyDictionary()

    @fail_closed("hold")
    async def request(self, flow: http.HTTPFlow) -> None:
        decision = flow.metadata.get(meta.DECISION, {})
        if answered(flow) or decision.get("verdict") != "require_approval":
            return
        if grant := await self._grants.use(
                agent=flow.metadata[meta.AGENT], action=action_of(flow), tier=decision["tier"],
                request_hash=flow.metadata[meta.REQUEST_HASH], request_id=request_id(flow)):
            flow.metadata[meta.APPROVED_BY] = [f"grant:{grant.id}"]
            return
        if problem := self._beyond_limits(flow):  # what is held is stored: bound it
            refuse(flow, denied(problem, "hold-limits"), "hold")
            return
        item = await self._hold(flow)
        if item.state is State.PENDING:
            item = await self._wait(flow, item)
        if not flow.client_conn.connected:
            return  # the agent hung up: an approval stays for its retry, never used up here
        if item.state is State.CONSUMED:  # another identical call used that approval
            item = await self._hold(flow)
        self._answer(flow, item)

    async def _wait(self, flow: http.HTTPFlow, item: PendingItem) -> PendingItem:
        """Until the item is decided, `hold_seconds` pass, or the agent hangs up."""
        gone = self._gone.setdefault(flow.client_conn, asyncio.Event())
        decided = asyncio.ensure_future(
            self._approvals.wait(item.id, self._approvals.settings.hold_seconds))
        hung_up = asyncio.ensure_future(gone.wait())
        await asyncio.wait({decided, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        hung_up.cancel()
        if not decided.done():
            decided.cancel()
            return self._approvals.store.get(item.id) or item
        return decided.result()

    def client_disconnected(self, client: connection.Client) -> None:
        if (gone := self._gone.pop(client, None)) is not None:
            gone.set()

    def _beyond_limits(self, flow: http.HTTPFlow) -> str | None:
        """Held calls cost storage and reviewer attention: bound both per agent."""
        size = len(flow.request.raw_content or b"")
        if size > HELD_BODY_LIMIT:
            return (f"a call held for review may carry at most {HELD_BODY_LIMIT} bytes of body; "
                    f"this one has {size}")
        store, agent = self._approvals.store, flow.metadata[meta.AGENT]
        if store.find_reusable(agent, flow.metadata[meta.REQUEST_HASH]) is not None:
            return None  # a retry of a call already in the queue
        if len(store.list(states=[State.PENDING], agent=agent,
                          limit=MAX_OPEN_PER_AGENT)) >= MAX_OPEN_PER_AGENT:
            return (f"agent `{agent}` already has {MAX_OPEN_PER_AGENT} calls awaiting review; "
                    "wait for reviewers before sending more")
        return None

    def _lapsed(self, item: PendingItem) -> bool:
        """An approval is good for `expire_after` from when it was given, then it lapses: an
        agent that went away cannot use it days later."""
        given = datetime.fromisoformat(item.decided_at or item.created_at)
        return given + self._approvals.settings.expire_after <= utc_now()

    async def _hold(self, flow: http.HTTPFlow) -> PendingItem:
        item = await self._approvals.hold(
            agent=flow.metadata[meta.AGENT], tenant=flow.metadata.get(meta.TENANT),
            action=flow.metadata[meta.ACTION], decision=flow.metadata[meta.DECISION],
            request_hash=flow.metadata[meta.REQUEST_HASH], request=held_request(flow))
        flow.metadata[meta.PENDING_ID] = item.id
        return item

    def _answer(self, flow: http.HTTPFlow, item: PendingItem) -> None:
        halt = self._halts.board.match(agent=item.agent, tenant=item.tenant,
                                       host=item.request.host, action=item.action,
                                       write=is_write(item.request.method, item.tags))
        if halt is not None:
            flow.metadata[meta.HALT_ID] = halt.id
            refusal = shadowed if halt.mode == "shadow" else halted
            refuse(flow, refusal(halt.id, halt.reason), "hold")
        elif item.state is State.APPROVED and self._lapsed(item):
            lapsed = self._approvals.store.finish(
                item.id, State.EXPIRED, "approved, but not used before the approval expired",
                expected=(State.APPROVED,))
            refuse(flow, approval_expired(item.id, lapsed.outcome_reason or "expired"), "hold")
        elif item.state is State.APPROVED and self._approvals.consume(item.id):
            forward_as_approved(flow, item.request)
            flow.metadata[meta.APPROVED_BY] = [v.reviewer for v in item.votes
                                               if v.verdict == APPROVE]
        elif item.state is State.DENIED or item.state is State.CANCELLED:
            refuse(flow, approval_denied(item.id, item.outcome_reason or "denied"), "hold")
        elif item.state is State.EXPIRED:
            refuse(flow, approval_expired(item.id, item.outcome_reason or "expired"), "hold")
        else:
            wait = retry_after(self._approvals.settings.hold_seconds)
            refuse(flow, approval_pending(item.id, wait, item.reason), "hold")
