"""Creating, using and revoking standing grants, each step in the audit trail."""

from __future__ import annotations

from gateway.approvals.grants import Grant, GrantRequest, GrantStore, new_grant
from gateway.audit import AuditLog
from gateway.call import Action
from gateway.clock import utc_now_iso


class GrantService:
    def __init__(self, store: GrantStore, audit: AuditLog) -> None:
        self.store = store
        self._audit = audit

    async def create(self, request: GrantRequest, created_by: str) -> Grant:
        grant = new_grant(request, created_by)
        self.store.add(grant)
        await self._audit.append("grant.created", {"actor": created_by, **grant.to_json()})
        return grant

    async def use(self, *, agent: str, action: Action, tier: int | None,
                  request_hash: str, request_id: str) -> Grant | None:
        """The grant that lets this call through, its use taken and recorded; or None."""
        now = utc_now_iso()
        for grant in self.store.active_for(agent, now):
            if grant.covers(agent, action, tier) and (use := self.store.use(grant.id, now)):
                await self._audit.append("grant.used", {
                    "grant_id": grant.id, "agent": agent, "action": action.type,
                    "params": action.params, "request_hash": request_hash,
                    "request_id": request_id, "use": use,
                    "max_uses": grant.max_uses, "created_by": grant.created_by})
                return grant
        return None

    async def revoke(self, grant_id: str, actor: str) -> Grant | None:
        if not self.store.revoke(grant_id, utc_now_iso()):
            return None
        grant = self.store.get(grant_id)
        await self._audit.append("grant.revoked", {"actor": actor, "grant_id": grant_id})
        return grant
