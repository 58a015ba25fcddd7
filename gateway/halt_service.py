"""Setting and lifting halts: persisted, audited, then swapped into the live board.

If the halts cannot be read when the gateway starts, it does not guess that none are in force:
it starts under a standing global halt, held in memory and named `h_unreadable`, says why, and
keeps it until a responder lifts it once the store reads again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace

from gateway.audit import AuditLog
from gateway.clock import utc_now_iso
from gateway.halts import Halt, HaltBoard, HaltError, check_known, validate_halt
from gateway.policy_holder import PolicyHolder
from gateway.store import StateStore, StoreError

log = logging.getLogger("gatehouse.halts")

UNREADABLE_ID = "h_unreadable"


class HaltService:
    def __init__(self, store: StateStore, audit: AuditLog, policy: PolicyHolder) -> None:
        self._store = store
        self._audit = audit
        self._policy = policy
        self.on_set: list[Callable[[Halt], None]] = []  # e.g. wake held connections, notify
        self.on_lift: list[Callable[[Halt], None]] = []
        self.standing: Halt | None = None  # the halt of an unreadable store, in memory only
        try:
            self.board = HaltBoard(store.halts(active_only=True))
        except StoreError as e:
            self.standing = Halt(
                id=UNREADABLE_ID, scope="all", target="", actor="gatehouse",
                created_at=utc_now_iso(),
                reason=f"the halts in the state store could not be read at start ({e}); "
                       "every call is refused until a responder repairs the store and "
                       f"lifts `{UNREADABLE_ID}`")
            log.error("starting HALTED: %s", self.standing.reason)
            self.board = HaltBoard([self.standing])

    async def announce_start(self) -> None:
        """Audit and announce the standing halt, if the gateway started under one."""
        if self.standing is not None:
            for listener in self.on_set:
                listener(self.standing)
            await self._audit.append("halt.set", self.standing.to_json())

    def get(self, halt_id: str) -> Halt | None:
        if self.standing is not None and halt_id == self.standing.id:  # it is not stored
            return self.standing
        return self._store.get_halt(halt_id)

    def list(self, *, active_only: bool) -> list[Halt]:
        """Stored halts, after the standing one; while it stands, the store may still fail,
        and the standing halt (whose reason says so) is all there is to show."""
        if self.standing is None:
            return self._store.halts(active_only=active_only)
        try:
            return [self.standing, *self._store.halts(active_only=active_only)]
        except StoreError:
            return [self.standing]

    async def set(self, scope: str, target: str | None, reason: str, actor: str,
                  mode: str = "halt") -> Halt:
        """A halt (`mode: halt`) refuses every call it covers; a shadow (`mode: shadow`)
        refuses only writes, with what the policy would have done on the record."""
        if mode not in ("halt", "shadow"):
            raise HaltError(f"unknown mode `{mode}`; use halt or shadow")
        scope, target = validate_halt(scope, target, reason)
        if scope == "agent":
            check_known(scope, target, self._store.agent_names() |
                        set(self._policy.current.agent_names) | {"anonymous"})
        elif scope == "tenant":
            check_known(scope, target, set(self._policy.current.tenant_names))
        halt = Halt(id="h_" + secrets.token_hex(6), scope=scope, target=target,
                    reason=reason.strip(), actor=actor, created_at=utc_now_iso(), mode=mode)
        self._store.add_halt(halt)
        self.reload()
        for listener in self.on_set:
            listener(halt)
        await self._audit.append("halt.set", {"actor": actor, **halt.to_json()})
        return halt

    async def resume_in_shadow(self, halt_id: str, actor: str) -> tuple[Halt, Halt] | None:
        """The restart gate: lift a halt and put its scope in shadow at once, so the agent's
        writes stay withheld (and recorded) until a responder lifts the shadow too."""
        halt = self.get(halt_id)
        if halt is None or halt.lifted_at is not None:
            return None
        if halt.mode == "shadow":
            raise HaltError(f"`{halt_id}` is a shadow already; lift it to leave shadow mode")
        shadow = await self.set(halt.scope, halt.target or None,
                                f"resumed from {halt_id} in shadow mode: {halt.reason}", actor,
                                mode="shadow")
        lifted = await self.lift(halt_id, actor)
        if lifted is None:  # lifted meanwhile by someone else: the shadow still stands
            lifted = self.get(halt_id) or halt
        return lifted, shadow

    async def lift(self, halt_id: str, actor: str) -> Halt | None:
        if self.standing is not None and halt_id == self.standing.id:
            halt = await self._lift_standing(actor)
        else:
            halt = self._store.lift_halt(halt_id, actor)
            if halt is None:
                return None
            self.reload()
        for listener in self.on_lift:
            listener(halt)
        await self._audit.append("halt.lifted", {"actor": actor, **halt.to_json()})
        return halt

    async def _lift_standing(self, actor: str) -> Halt:
        assert self.standing is not None
        try:
            stored = self._store.halts(active_only=True)
        except StoreError as e:
            raise HaltError(f"the halts still cannot be read ({e}); repair the state store "
                            f"before lifting `{UNREADABLE_ID}`") from e
        lifted = replace(self.standing, lifted_at=utc_now_iso(), lifted_by=actor)
        self.standing = None
        self.board = HaltBoard(stored)
        return lifted

    def reload(self) -> None:
        """Rebuild the board from the store (a halt set or lifted elsewhere: another replica)."""
        standing = [self.standing] if self.standing is not None else []
        self.board = HaltBoard(standing + self._store.halts(active_only=True))
