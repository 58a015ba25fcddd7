"""Held calls from request to outcome: create or attach, wait, vote, consume, expire.

Every step that changes an item is in the audit trail with the evidence an approval needs
(policy snapshot, request hash, reviewer, time). Waiting agents are woken through one
`asyncio.Event` per item, set by whatever decides it (a vote, expiry, a halt).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from gateway.approvals.model import HeldRequest, PendingItem, State, Vote, new_pending_id
from gateway.approvals.review import APPROVE, VoteRefused, check_vote
from gateway.approvals.store import PendingConflict, PendingStore
from gateway.audit import AuditLog
from gateway.clock import iso, utc_now
from gateway.content import UndecodableBody, decode_body
from gateway.halt_service import HaltService
from gateway.policy import Verdict, evaluate
from gateway.policy.schema import Approvals
from gateway.policy_holder import PolicyHolder
from gateway.tokens import Principal

REDECIDE_BODY_LIMIT = 16 * 1024 * 1024
EVIDENCE = ("pending_id", "request_hash", "snapshot_id", "reviewer", "at")


class ApprovalService:
    def __init__(self, store: PendingStore, audit: AuditLog, policy: PolicyHolder,
                 halts: HaltService) -> None:
        self.store = store
        self._audit = audit
        self._policy = policy
        self._halts = halts
        self._waiters: dict[str, asyncio.Event] = {}

    @property
    def settings(self) -> Approvals:
        return self._policy.current.model.approvals

    async def hold(self, *, agent: str, tenant: str | None, action: dict[str, object],
                   decision: dict[str, object], request_hash: str,
                   request: HeldRequest) -> PendingItem:
        """The open item for this exact call by this agent, or a new one."""
        if (item := self.store.find_reusable(agent, request_hash)) is not None:
            return item
        settings, now = self.settings, utc_now()
        tier = int(decision.get("tier") or 1)  # type: ignore[call-overload]
        item = PendingItem(
            id=new_pending_id(), request_hash=request_hash, agent=agent, tenant=tenant,
            action=str(action["type"]), tags=tuple(action.get("tags", ())),  # type: ignore[arg-type]
            params=dict(action.get("params", {})),  # type: ignore[call-overload]
            rule_ids=tuple(decision["rule_ids"]),  # type: ignore[arg-type]
            reason=str(decision["reason"]), rollback=decision.get("rollback"),  # type: ignore[arg-type]
            tier=tier, route=decision.get("route"),  # type: ignore[arg-type]
            approvals_needed=settings.tiers[tier].approvals if tier in settings.tiers else 1,
            snapshot_id=str(decision["snapshot_id"]), request=request, state=State.PENDING,
            created_at=iso(now), expires_at=iso(now + settings.expire_after))
        self.store.add(item)
        await self._audit.append("approval.requested", {
            "pending_id": item.id, "agent": agent, "action": item.action,
            "params": item.params, "request_hash": request_hash, "tier": tier,
            "route": item.route, "rule_ids": list(item.rule_ids),
            "snapshot_id": item.snapshot_id, "expires_at": item.expires_at})
        return item

    async def wait(self, item_id: str, seconds: float) -> PendingItem:
        """Until the item is decided (or a halt wakes everyone), at most `seconds`."""
        event = self._waiters.setdefault(item_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout=max(seconds, 0))
        except TimeoutError:
            pass
        item = self.store.get(item_id)
        assert item is not None
        return item

    def wake(self, item_id: str) -> None:
        if (event := self._waiters.pop(item_id, None)) is not None:
            event.set()

    def wake_all(self) -> None:
        """A halt was set: held connections re-check it at once."""
        for item_id in list(self._waiters):
            self.wake(item_id)

    def consume(self, item_id: str) -> bool:
        return self.store.consume(item_id)

    def open(self, item_id: str, reviewer: str) -> datetime:
        return datetime.fromisoformat(self.store.opened(item_id, reviewer))

    async def vote(self, item_id: str, reviewer: Principal, verdict: str, reason: str,
                   confirm: str | None) -> PendingItem:
        item = self.store.get(item_id)
        if item is None:
            raise VoteRefused(404, "not_found", f"no pending item `{item_id}`")
        policy, now = self._policy.current, utc_now()
        tier = policy.model.approvals.tiers.get(item.tier)
        if tier is None:
            raise VoteRefused(409, "conflict", f"tier {item.tier} is not in the running policy "
                                               f"`{policy.snapshot_id}`; the item cannot be "
                                               "approved under it")
        opened = self.store.first_opened(item_id, reviewer.name)
        check_vote(item, tier=tier, groups=policy.model.approvals.groups, reviewer=reviewer,
                   verdict=verdict, reason=reason, confirm=confirm,
                   opened_at=datetime.fromisoformat(opened) if opened else None, now=now)
        if verdict == APPROVE:
            self._refuse_if_halted(item)
            await self._redecide(item, reviewer.name)
        vote = Vote(reviewer=reviewer.name, verdict=verdict, reason=reason, at=iso(now),
                    opened_at=opened)
        try:
            updated = self.store.vote(item_id, vote, approvals_needed=item.approvals_needed,
                                      snapshot_id=policy.snapshot_id)
        except PendingConflict as e:
            raise VoteRefused(409, "conflict", str(e)) from e
        await self._record("approval.vote", updated, reviewer=reviewer.name, verdict=verdict,
                           reason=reason, at=vote.at, opened_at=opened,
                           decided_snapshot_id=policy.snapshot_id)
        if updated.state is not State.PENDING:
            await self._record(f"approval.{updated.state.value}", updated,
                               reviewer=reviewer.name, at=vote.at,
                               approved_by=[v.reviewer for v in updated.votes
                                            if v.verdict == APPROVE],
                               decided_snapshot_id=policy.snapshot_id)
            self.wake(item_id)
        return updated

    def _refuse_if_halted(self, item: PendingItem) -> None:
        halt = self._halts.board.match(agent=item.agent, tenant=item.tenant,
                                       host=item.request.host, action=item.action)
        if halt is not None:
            raise VoteRefused(409, "halted", f"halt `{halt.id}` covers this call "
                                             f"({halt.reason}); approvals in its scope wait "
                                             "until it is lifted")

    async def _redecide(self, item: PendingItem, reviewer: str) -> None:
        """Approval re-checks the running policy: a call it now denies fails loudly."""
        policy = self._policy.current
        headers = {k.lower(): v for k, v in item.request.headers}
        try:
            body = decode_body(item.request.body, headers.get("content-encoding"),
                               REDECIDE_BODY_LIMIT)
        except UndecodableBody:
            body = b""
        _, decision = evaluate(policy, item.request.to_call(item.agent, body), utc_now())
        if decision.verdict is not Verdict.DENY:
            return
        reason = (f"the running policy `{policy.snapshot_id}` now denies this call: "
                  f"{decision.reason}")
        try:
            denied = self.store.finish(item.id, State.DENIED, reason)
        except PendingConflict as e:
            raise VoteRefused(409, "conflict", str(e)) from e
        await self._record("approval.denied", denied, reviewer=reviewer, at=iso(utc_now()),
                           decided_snapshot_id=policy.snapshot_id,
                           denied_by_rules=list(decision.rule_ids))
        self.wake(item.id)
        raise VoteRefused(409, "policy_denies", f"approval failed: {reason}; the item is "
                                                "denied")

    async def expire_due(self) -> None:
        """Items nobody decided in time are refused: expiry never approves."""
        now = utc_now()
        for item_id in self.store.due(iso(now)):
            try:
                item = self.store.finish(item_id, State.EXPIRED,
                                         f"no decision within {self.settings.expire_after}")
            except PendingConflict:
                continue  # decided meanwhile
            await self._record("approval.expired", item, reviewer="gatehouse", at=iso(now))
            self.wake(item_id)

    async def _record(self, event: str, item: PendingItem, **fields: object) -> None:
        record = {"pending_id": item.id, "agent": item.agent, "action": item.action,
                  "request_hash": item.request_hash, "snapshot_id": item.snapshot_id,
                  "state": item.state.value, "tier": item.tier, **fields}
        missing = [key for key in EVIDENCE if not record.get(key)]
        if missing:
            raise ValueError(f"`{event}` lacks evidence fields: {', '.join(missing)}")
        await self._audit.append(event, record)


def retry_after(hold_seconds: float) -> int:
    """Seconds an agent should wait before retrying a held call (it is held again then)."""
    return max(1, min(int(hold_seconds), 5))



