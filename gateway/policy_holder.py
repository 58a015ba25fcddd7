"""The running policy snapshot, and how it is replaced.

A reload that fails validation leaves the running snapshot in place and reports why (log,
return value for the admin API, audit record). Every snapshot that becomes active is kept in the
state store, so an incident can ask which rules were in force at any time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.audit import AuditLog
from gateway.clock import utc_now_iso
from gateway.policy import Policy, PolicyError, load_policy
from gateway.store import StateStore

log = logging.getLogger("gatehouse.policy")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    snapshot_id: str  # the snapshot running after the attempt
    previous_snapshot_id: str
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "snapshot_id": self.snapshot_id,
                "previous_snapshot_id": self.previous_snapshot_id, "error": self.error}


class PolicyHolder:
    def __init__(self, path: Path, store: StateStore, audit: AuditLog) -> None:
        self.path = path
        self._store = store
        self._audit = audit
        self.current: Policy = load_policy(path)  # a bad file at start stops start-up
        self.on_change: list[Callable[[Policy], None]] = []  # told of each new snapshot
        self.active_since = utc_now_iso()
        self._mtime = self._file_mtime()
        store.record_snapshot(self.current.snapshot_id, self.current.revision,
                              str(path), self.current.text)
        audit.append_sync("policy.loaded", self._fields(self.current, None))

    def _file_mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def changed_on_disk(self) -> bool:
        return self._file_mtime() != self._mtime

    async def reload(self, actor: str) -> ReloadResult:
        previous = self.current
        self._mtime = self._file_mtime()
        try:
            candidate = load_policy(self.path)
        except PolicyError as e:
            log.error("policy reload rejected, keeping %s: %s", previous.snapshot_id, e)
            await self._audit.append("policy.rejected", {
                "actor": actor, "source": str(self.path), "error": str(e),
                "snapshot_id": previous.snapshot_id})
            return ReloadResult(False, previous.snapshot_id, previous.snapshot_id, str(e))
        if candidate.snapshot_id != previous.snapshot_id:
            self._store.record_snapshot(candidate.snapshot_id, candidate.revision,
                                        str(self.path), candidate.text)
            await self._audit.append("policy.reloaded", {
                **self._fields(candidate, actor), "previous_snapshot_id": previous.snapshot_id})
            self.current = candidate
            self.active_since = utc_now_iso()
            for listener in self.on_change:
                listener(candidate)
            log.info("policy %s active (was %s)", candidate.snapshot_id, previous.snapshot_id)
        return ReloadResult(True, self.current.snapshot_id, previous.snapshot_id)

    @staticmethod
    def _fields(policy: Policy, actor: str | None) -> dict[str, object]:
        return {"actor": actor, "source": policy.source, "snapshot_id": policy.snapshot_id,
                "revision": policy.revision, "warnings": list(policy.warnings)}
