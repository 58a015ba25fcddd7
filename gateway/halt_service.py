"""Setting and lifting halts: persisted, audited, then swapped into the live board."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from gateway.audit import AuditLog
from gateway.clock import utc_now_iso
from gateway.halts import Halt, HaltBoard, check_known, validate_halt
from gateway.policy_holder import PolicyHolder
from gateway.store import StateStore


class HaltService:
    def __init__(self, store: StateStore, audit: AuditLog, policy: PolicyHolder) -> None:
        self._store = store
        self._audit = audit
        self._policy = policy
        self.board = HaltBoard(store.halts(active_only=True))
        self.on_set: list[Callable[[Halt], None]] = []  # e.g. wake held connections

    async def set(self, scope: str, target: str | None, reason: str, actor: str) -> Halt:
        scope, target = validate_halt(scope, target, reason)
        if scope == "agent":
            check_known(scope, target, self._store.agent_names() |
                        set(self._policy.current.agent_names) | {"anonymous"})
        elif scope == "tenant":
            check_known(scope, target, set(self._policy.current.tenant_names))
        halt = Halt(id="h_" + secrets.token_hex(6), scope=scope, target=target,
                    reason=reason.strip(), actor=actor, created_at=utc_now_iso())
        self._store.add_halt(halt)
        self.board = HaltBoard(self._store.halts(active_only=True))
        for listener in self.on_set:
            listener(halt)
        await self._audit.append("halt.set", {"actor": actor, **halt.to_json()})
        return halt

    async def lift(self, halt_id: str, actor: str) -> Halt | None:
        halt = self._store.lift_halt(halt_id, actor)
        if halt is not None:
            self.board = HaltBoard(self._store.halts(active_only=True))
            await self._audit.append("halt.lifted", {"actor": actor, **halt.to_json()})
        return halt
