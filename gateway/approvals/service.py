"""Held calls from request to outcome: create or attach, wait, vote, consume, escalate, expire.

Every step that changes an item is in the audit trail with the evidence an approval needs
(policy snapshot, request hash, reviewer, time), and reviewers are notified of new items,
escalations, second reviews, items about to expire and outcomes (`notify`; never waited for).
Waiting agents are woken through one `asyncio.Event` per item, set by whatever decides it (a
vote, expiry, a halt). Queue health (`approvals.queue`) is applied here too: a new or escalated
item is assigned (`assign`), an approval may be refused for a cooldown or drawn for a second
review (`fatigue`), and waits and review times go to the metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime

from gateway.approvals.escalation import (
    Timeout,
    escalate_at,
    escalates_next,
    expiry_notice_at,
    on_timeout,
)
from gateway.approvals.fatigue import Draw, approvals_since, cooling_until, sampled
from gateway.approvals.model import HeldRequest, PendingItem, State, Vote, new_pending_id
from gateway.approvals.notify import Event, Notifier
from gateway.approvals.review import APPROVE, VoteRefused, check_vote
from gateway.approvals.store import PendingConflict, PendingStore
from gateway.audit import AuditLog
from gateway.clock import iso, utc_now, utc_now_iso
from gateway.content import UndecodableBody, decode_body
from gateway.halt_service import HaltService
from gateway.halts import Halt, HaltBoard, is_write
from gateway.metrics import Metrics
from gateway.policy import Verdict, evaluate
from gateway.policy.decide import dlp_entities
from gateway.policy.schema import Approvals
from gateway.policy_holder import PolicyHolder
from gateway.scan.pool import ScanPool
from gateway.scan.requests import request_entities
from gateway.tokens import Principal

REDECIDE_BODY_LIMIT = 16 * 1024 * 1024
EVIDENCE = ("pending_id", "request_hash", "snapshot_id", "reviewer", "at")
SWEEPER = "gatehouse"  # who escalates and expires items in the audit trail
TIMEOUT_REVIEWER = "gatehouse:on_timeout"  # who approves at expiry; no reviewer name has a `:`

log = logging.getLogger("gatehouse.approvals")


class ApprovalService:
    def __init__(self, store: PendingStore, audit: AuditLog, policy: PolicyHolder,
                 halts: HaltService, notifier: Notifier | None = None,
                 metrics: Metrics | None = None, draw: Draw = sampled,
                 scanner: ScanPool | None = None) -> None:
        self.store = store
        self._scanner = scanner  # re-checks outbound DLP rules on approval
        self._audit = audit
        self._policy = policy
        self._halts = halts
        self._notifier = notifier or Notifier((), audit)
        self._metrics = metrics or Metrics()
        self._draw = draw  # whether an approval needs a second review (tests pass their own)
        self._waiters: dict[str, asyncio.Event] = {}

    @property
    def settings(self) -> Approvals:
        return self._policy.current.model.approvals

    async def hold(self, *, agent: str, tenant: str | None, action: dict[str, object],
                   decision: dict[str, object], request_hash: str,
                   request: HeldRequest) -> PendingItem:
        """The item for this exact call by this agent, or a new one. An open item created under
        a laxer tier does not serve a policy that now asks for more: the call needs a new
        review at the tier that applies now."""
        tier = int(decision.get("tier") or 1)  # type: ignore[call-overload]
        item = self.store.find_reusable(agent, request_hash)
        if item is not None and not (item.state in (State.PENDING, State.APPROVED)
                                     and item.tier < tier):
            return item
        settings, now = self.settings, utc_now()
        route: str | None = decision.get("route")  # type: ignore[assignment]
        expires, escalates = now + settings.expire_after, escalate_at(settings, route, (), now)
        item = PendingItem(
            id=new_pending_id(), request_hash=request_hash, agent=agent, tenant=tenant,
            action=str(action["type"]), tags=tuple(action.get("tags", ())),  # type: ignore[arg-type]
            params=dict(action.get("params", {})),  # type: ignore[call-overload]
            rule_ids=tuple(decision["rule_ids"]),  # type: ignore[arg-type]
            reason=str(decision["reason"]), rollback=decision.get("rollback"),  # type: ignore[arg-type]
            tier=tier, route=route,
            approvals_needed=settings.tiers[tier].approvals if tier in settings.tiers else 1,
            snapshot_id=str(decision["snapshot_id"]), request=request, state=State.PENDING,
            created_at=iso(now), expires_at=iso(expires),
            escalate_at=iso(escalates) if escalates else None,
            expiry_notice_at=iso(expiry_notice_at(now, expires)))
        self.store.add(item)
        item, note = self._assign(item)
        await self._audit.append("approval.requested", {
            "pending_id": item.id, "agent": agent, "action": item.action,
            "params": item.params, "request_hash": request_hash, "tier": tier,
            "route": item.route, "rule_ids": list(item.rule_ids),
            "snapshot_id": item.snapshot_id, "expires_at": item.expires_at,
            "escalate_at": item.escalate_at, "assigned_to": item.assigned_to,
            "assignment": note})
        self._notify(Event.NEW, item)
        return item

    def _assign(self, item: PendingItem) -> tuple[PendingItem, str | None]:
        """Assign a routed item within its group (see `assign`); with a note when everyone is
        at the cap and it stays unassigned."""
        if item.route is None:
            return item, None
        settings = self.settings
        members = settings.groups.get(item.route, [])
        cap = settings.queue.max_open_per_reviewer
        assigned = self.store.assign(item.id, members, cap)
        if assigned.assigned_to is not None or not members:
            return assigned, None
        note = (f"every member of `{item.route}` has {cap} open item(s) "
                "(max_open_per_reviewer); unassigned, any of them may vote")
        log.warning("%s (%s by %s): %s", item.id, item.action, item.agent, note)
        return assigned, note

    def cooling_until(self, reviewer: str, now: datetime | None = None) -> datetime | None:
        """When `reviewer` may approve again after a burst of approvals; None: now."""
        now, queue = now or utc_now(), self.settings.queue
        if queue.cooldown_after_approvals is None:
            return None
        times = self.store.approval_times(reviewer, iso(approvals_since(queue, now)))
        return cooling_until([datetime.fromisoformat(t) for t in times], queue, now)

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

    def waiting_under(self, halt: Halt) -> list[PendingItem]:
        """The undecided items a halt covers (or covered, once lifted): their reviews wait
        while it is in force."""
        board = HaltBoard([dataclasses.replace(halt, lifted_at=None, lifted_by=None)])
        return [item for item in self.store.list(states=[State.PENDING], limit=10_000)
                if board.match(agent=item.agent, tenant=item.tenant, host=item.request.host,
                               action=item.action,
                               write=is_write(item.request.method, item.tags))]

    def consume(self, item_id: str) -> bool:
        consumed = self.store.consume(item_id)
        if consumed and self._notifier.enabled and (item := self.store.get(item_id)):
            self._notify(Event.CONSUMED, item)
        return consumed

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
            self._refuse_if_cooling(reviewer.name, now)
            self._refuse_if_halted(item)
            await self._redecide(item, reviewer.name)
        vote = Vote(reviewer=reviewer.name, verdict=verdict, reason=reason, at=iso(now),
                    opened_at=opened)
        deciding = verdict == APPROVE and item.approvals + 1 >= item.approvals_needed
        drawn = deciding and not item.second_review and \
            self._draw(policy.model.approvals.queue.second_review_rate)
        try:
            updated = self.store.vote(item_id, vote, approvals_needed=item.approvals_needed,
                                      snapshot_id=policy.snapshot_id, second_review=drawn)
        except PendingConflict as e:
            raise VoteRefused(409, "conflict", str(e)) from e
        if opened is not None:
            self._metrics.observe_review(reviewer.name, policy.model.approvals.groups,
                                         (now - datetime.fromisoformat(opened)).total_seconds())
        await self._record("approval.vote", updated, reviewer=reviewer.name, verdict=verdict,
                           reason=reason, at=vote.at, opened_at=opened,
                           decided_snapshot_id=policy.snapshot_id)
        if updated.second_review and not item.second_review:
            await self._record("approval.second_review", updated, reviewer=reviewer.name,
                               at=vote.at, approvals=updated.approvals,
                               approvals_needed=updated.approvals_needed)
            self._notify(Event.SECOND_REVIEW, updated)
        if updated.state is not State.PENDING:
            await self._record(f"approval.{updated.state.value}", updated,
                               reviewer=reviewer.name, at=vote.at,
                               approved_by=[v.reviewer for v in updated.votes
                                            if v.verdict == APPROVE],
                               decided_snapshot_id=policy.snapshot_id)
            self._settled(updated, Event.APPROVED if updated.state is State.APPROVED
                          else Event.DENIED)
        return updated

    def _refuse_if_cooling(self, reviewer: str, now: datetime) -> None:
        until = self.cooling_until(reviewer, now)
        if until is not None:
            queue = self.settings.queue
            raise VoteRefused(429, "cooldown",
                              f"`{reviewer}` has given {queue.cooldown_after_approvals} or more "
                              f"approvals within an hour (approvals.queue."
                              f"cooldown_after_approvals) and is cooling down: approvals are "
                              f"refused until {iso(until)}; denials still count, or ask another "
                              "reviewer", until=iso(until))

    def _refuse_if_halted(self, item: PendingItem) -> None:
        halt = self._halts.board.match(agent=item.agent, tenant=item.tenant,
                                       host=item.request.host, action=item.action,
                                       write=is_write(item.request.method, item.tags))
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
        call = item.request.to_call(item.agent, body)
        if (wanted := dlp_entities(policy)) and self._scanner is not None:
            found = await request_entities(
                self._scanner, policy.model.responses, wanted, url=call.url,
                body=item.request.body, content_type=headers.get("content-type"),
                content_encoding=headers.get("content-encoding"))
            call = dataclasses.replace(call, request_entities=found)
        _, decision = evaluate(policy, call, utc_now())
        if decision.verdict is Verdict.REQUIRE_APPROVAL and (decision.tier or 1) > item.tier:
            raise VoteRefused(409, "policy_stricter", f"the running policy `{policy.snapshot_id}`"
                                                      f" now needs tier {decision.tier} for this "
                                                      f"call; this item was opened under tier "
                                                      f"{item.tier}: the agent's next try opens "
                                                      "one at the tier that applies now")
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
        self._settled(denied, Event.DENIED)
        raise VoteRefused(409, "policy_denies", f"approval failed: {reason}; the item is "
                                                "denied")

    async def sweep(self) -> None:
        """Once a second: escalate, say what expires soon, then expire. Escalating first moves
        an item due for both up the chain before its deadline is looked at."""
        now = utc_now()
        await self.escalate_due(now)
        self.notify_expiring(now)
        await self.expire_due(now)

    async def escalate_due(self, now: datetime | None = None) -> None:
        """Items pending past `escalate_at` move to the next group of the running policy's
        chain; with none left they stay where they are."""
        now, settings = now or utc_now(), self.settings
        for item_id in self.store.escalations_due(iso(now)):
            item = self.store.get(item_id)
            if item is None or item.state is not State.PENDING:
                continue
            if (group := escalates_next(item, settings)) is None:
                self.store.stop_escalating(item_id)
            else:
                await self._escalate(item, group, now, at_expiry=False)

    def notify_expiring(self, now: datetime | None = None) -> None:
        """Send "expiring soon" once per deadline, for items past their `expiry_notice_at`."""
        if not self._notifier.enabled:
            return
        for item_id in self.store.expiry_notices_due(iso(now or utc_now())):
            if (item := self.store.take_expiry_notice(item_id)) is not None:
                self._notify(Event.EXPIRING, item)

    async def expire_due(self, now: datetime | None = None) -> None:
        """Items nobody decided in time: refused, or moved up the chain with a fresh
        `expire_after` (`on_timeout: escalate`), or approved where their tier says so
        (`on_timeout: allow`). Expiry never approves by default."""
        now, settings = now or utc_now(), self.settings
        for item_id in self.store.due(iso(now)):
            item = self.store.get(item_id)
            if item is None or item.state is not State.PENDING:
                continue
            timeout = on_timeout(item, settings)
            if timeout is Timeout.ESCALATE and (group := escalates_next(item, settings)):
                await self._escalate(item, group, now, at_expiry=True)
            elif timeout is Timeout.ALLOW:
                await self._approve_on_timeout(item, now)
            else:
                escalated = f" after escalating to `{item.route}`" if item.escalation_level \
                    else ""
                await self._expire(item, f"no decision within {settings.expire_after}"
                                         f"{escalated}", now)

    async def _escalate(self, item: PendingItem, group: str, now: datetime, *,
                        at_expiry: bool) -> None:
        settings = self.settings
        following = escalate_at(settings, group, (*item.earlier_routes, item.route), now)
        expires = now + settings.expire_after if at_expiry else None
        try:
            moved = self.store.escalate(
                item.id, group, from_level=item.escalation_level,
                escalate_at=iso(following) if following else None,
                expires_at=iso(expires) if expires else None,
                expiry_notice_at=iso(expiry_notice_at(now, expires)) if expires else None)
        except PendingConflict:
            return  # decided (or escalated) meanwhile
        moved, note = self._assign(moved)
        trigger = "on_timeout" if at_expiry else "escalate_after"
        log.info("escalated %s (%s by %s) from %s to %s (%s)", item.id, item.action, item.agent,
                 item.route or "any reviewer", group, trigger)
        await self._record("approval.escalated", moved, reviewer=SWEEPER, at=iso(now),
                           from_route=item.route, route=group,
                           escalation_level=moved.escalation_level, trigger=trigger,
                           expires_at=moved.expires_at, escalate_at=moved.escalate_at,
                           assigned_to=moved.assigned_to, assignment=note)
        self._notify(Event.ESCALATED, moved)

    async def _approve_on_timeout(self, item: PendingItem, now: datetime) -> None:
        """`on_timeout: allow`, which only a low tier may set: approved as if by a reviewer
        named TIMEOUT_REVIEWER, so the call goes out once, like any approved call. A halt or
        a policy that now denies the call still wins."""
        halt = self._halts.board.match(agent=item.agent, tenant=item.tenant,
                                       host=item.request.host, action=item.action)
        if halt is not None:
            await self._expire(item, f"halt `{halt.id}` covers this call; on_timeout `allow` "
                                     "does not approve while halted", now)
            return
        try:
            await self._redecide(item, TIMEOUT_REVIEWER)
        except VoteRefused:
            return  # denied under the running policy (recorded), or decided meanwhile
        policy = self._policy.current
        vote = Vote(reviewer=TIMEOUT_REVIEWER, verdict=APPROVE, at=iso(now), opened_at=None,
                    reason=f"no reviewer decided by {item.expires_at}; tier {item.tier} "
                           "approves at expiry (on_timeout: allow)")
        try:
            approved = self.store.vote(item.id, vote, approvals_needed=1,
                                       snapshot_id=policy.snapshot_id)
        except PendingConflict:
            return
        log.warning("APPROVED WITHOUT A REVIEWER: %s (%s by %s) reached its deadline and tier "
                    "%d has on_timeout: allow", item.id, item.action, item.agent, item.tier)
        await self._record("approval.approved", approved, reviewer=TIMEOUT_REVIEWER,
                           at=vote.at, approved_by=[TIMEOUT_REVIEWER], on_timeout="allow",
                           decided_snapshot_id=policy.snapshot_id)
        self._settled(approved, Event.APPROVED)

    async def _expire(self, item: PendingItem, reason: str, now: datetime) -> None:
        try:
            expired = self.store.finish(item.id, State.EXPIRED, reason)
        except PendingConflict:
            return  # decided meanwhile
        await self._record("approval.expired", expired, reviewer=SWEEPER, at=iso(now))
        self._settled(expired, Event.EXPIRED)

    def _settled(self, item: PendingItem, event: Event) -> None:
        """An item was decided: wake its agent, tell the reviewers, time the wait."""
        self.wake(item.id)
        self._notify(event, item)
        if item.decided_at is not None:
            waited = datetime.fromisoformat(item.decided_at) - \
                datetime.fromisoformat(item.created_at)
            self._metrics.observe_wait(item.route, item.tier, waited.total_seconds(),
                                       action=self._entry(item.action),
                                       outcome=item.state.value,
                                       escalated=item.escalation_level > 0)

    def _entry(self, action: str) -> str:
        """A metric label: an action type the policy declares, else `other` (an MCP tool name
        is the agent's choice, and labels must stay bounded)."""
        declared = {entry.type for entry in self._policy.current.model.actions}
        return action if action in declared else "other"

    def _notify(self, event: Event, item: PendingItem) -> None:
        if self._notifier.enabled:
            self._notifier.notify(event, item, at=utc_now_iso(),
                                  on_timeout=on_timeout(item, self.settings).value)

    async def _record(self, event: str, item: PendingItem, **fields: object) -> None:
        record = {"pending_id": item.id, "agent": item.agent, "action": item.action,
                  "request_hash": item.request_hash, "snapshot_id": item.snapshot_id,
                  "state": item.state.value, "tier": item.tier,
                  "second_review": item.second_review, **fields}
        missing = [key for key in EVIDENCE if not record.get(key)]
        if missing:
            raise ValueError(f"`{event}` lacks evidence fields: {', '.join(missing)}")
        await self._audit.append(event, record)


def retry_after(hold_seconds: float) -> int:
    """Seconds an agent should wait before retrying a held call (it is held again then)."""
    return max(1, min(int(hold_seconds), 5))



