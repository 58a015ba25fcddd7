"""Standing grants: the reduced review of an incident.

A reviewer lets one agent make a class of calls (an action glob, with conditions on its params)
for a while and a number of times, e.g. "ops-bot may `deploy.restart` for 30 min, 5 times". A
matching call that would need a tier-1 approval passes, each use audited; tiers 2 and 3 never
pass on a grant, and a param that cannot be read never matches (a grant is an allow).
"""

from __future__ import annotations

import abc
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path

import orjson
from pydantic import Field, field_validator

from gateway.call import Action
from gateway.clock import iso, utc_now
from gateway.policy.conditions import compile_condition
from gateway.policy.params import MISSING
from gateway.policy.schema import Condition, Duration, StrictModel
from gateway.sqlite import open_database
from gateway.store import StoreError

MAX_GRANT = timedelta(hours=24)
_GRANTABLE_ACTION = re.compile(r"[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*(\.\*)?")
GRANTABLE_TIERS = frozenset({1})


class GrantRequest(StrictModel):
    """What a reviewer asks for; validated like policy, with the same conditions."""

    agent: str = Field(min_length=1, description="The one agent the grant is for.")
    action: str = Field(min_length=1, description="Action type or glob, e.g. `deploy.*`.")
    params: dict[str, Condition] = Field(default_factory=dict,
                                         description="Conditions every use must meet.")
    expires_in: Duration = Field(description="How long the grant lasts, at most 24h.")
    max_uses: int = Field(ge=1, le=1000, description="How many calls it lets through.")
    reason: str = Field(min_length=1, description="Why: shown in the audit trail.")

    @field_validator("expires_in")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= MAX_GRANT:
            raise ValueError("a grant lasts more than 0 s and at most 24h")
        return value

    @field_validator("action")
    @classmethod
    def _narrow(cls, value: str) -> str:
        if not _GRANTABLE_ACTION.fullmatch(value):
            raise ValueError("a grant names one action (`deploy.restart`) or one family "
                             "(`deploy.*`); no other wildcards")
        return value


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    agent: str
    action: str
    params: dict[str, object]  # the conditions as given (JSON)
    reason: str
    created_by: str
    created_at: str
    expires_at: str
    max_uses: int
    uses: int = 0
    revoked_at: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "agent": self.agent, "action": self.action,
                "params": self.params, "reason": self.reason, "created_by": self.created_by,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "max_uses": self.max_uses, "uses": self.uses, "revoked_at": self.revoked_at}

    def covers(self, agent: str, action: Action, tier: int | None) -> bool:
        if tier not in GRANTABLE_TIERS or agent != self.agent:
            return False
        if not fnmatchcase(action.type, self.action):
            return False
        for name, raw in self.params.items():
            if name in action.unreadable:
                return False
            test = compile_condition(Condition.model_validate(raw))
            if not test(action.params.get(name, MISSING)):
                return False
        return True


def new_grant(request: GrantRequest, created_by: str) -> Grant:
    now = utc_now()
    return Grant(id="g_" + secrets.token_hex(6), agent=request.agent, action=request.action,
                 params={k: v.model_dump(by_alias=True, exclude_none=True)
                         for k, v in request.params.items()},
                 reason=request.reason, created_by=created_by, created_at=iso(now),
                 expires_at=iso(now + request.expires_in), max_uses=request.max_uses)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, agent TEXT NOT NULL, action TEXT NOT NULL, params TEXT NOT NULL,
    reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL, max_uses INTEGER NOT NULL, uses INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT);
CREATE INDEX IF NOT EXISTS grants_agent ON grants (agent, expires_at);
"""
_COLUMNS = ("id, agent, action, params, reason, created_by, created_at, expires_at, max_uses, "
            "uses, revoked_at")


class GrantStore(abc.ABC):
    """Where grants are kept. A use is taken atomically, so max_uses is never passed, even by
    several gateways at once."""

    @abc.abstractmethod
    def add(self, grant: Grant) -> None: ...

    @abc.abstractmethod
    def get(self, grant_id: str) -> Grant | None: ...

    @abc.abstractmethod
    def list(self, *, active_at: str | None) -> list[Grant]:
        """Every grant, or those still usable at `active_at`; oldest first."""

    @abc.abstractmethod
    def active_for(self, agent: str, now: str) -> list[Grant]:
        """The agent's grants still usable at `now`, oldest first."""

    @abc.abstractmethod
    def use(self, grant_id: str, now: str) -> int | None:
        """Take one use if the grant is still live: the number of that use, or None when it
        ran out meanwhile."""

    @abc.abstractmethod
    def revoke(self, grant_id: str, now: str) -> bool:
        """Revoke a grant not yet revoked; False when it already was (or does not exist)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class SQLiteGrantStore(GrantStore):
    """Grants in the state database; a use is taken atomically, so max_uses is never passed."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = open_database(path)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open grants in `{path}`: {e}") from e
        self._lock = threading.Lock()

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[Grant]:
        try:
            with self._lock:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM grants {sql}", args).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"grants: {e}") from e
        return [Grant(row[0], row[1], row[2], orjson.loads(row[3]), *row[4:]) for row in rows]

    def _change(self, sql: str, args: tuple[object, ...]) -> int:
        try:
            with self._lock:
                return self._db.execute(sql, args).rowcount
        except sqlite3.Error as e:
            raise StoreError(f"grants: {e}") from e

    def add(self, grant: Grant) -> None:
        self._change(f"INSERT INTO grants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (grant.id, grant.agent, grant.action, orjson.dumps(grant.params).decode(),
                      grant.reason, grant.created_by, grant.created_at, grant.expires_at,
                      grant.max_uses, grant.uses, grant.revoked_at))

    def get(self, grant_id: str) -> Grant | None:
        found = self._rows("WHERE id = ?", (grant_id,))
        return found[0] if found else None

    def list(self, *, active_at: str | None) -> list[Grant]:
        if active_at is None:
            return self._rows("ORDER BY created_at")
        return self._rows("WHERE revoked_at IS NULL AND expires_at > ? AND uses < max_uses "
                          "ORDER BY created_at", (active_at,))

    def active_for(self, agent: str, now: str) -> list[Grant]:
        return self._rows("WHERE agent = ? AND revoked_at IS NULL AND expires_at > ? "
                          "AND uses < max_uses ORDER BY created_at", (agent, now))

    def use(self, grant_id: str, now: str) -> int | None:
        """Take one use if the grant is still live: the number of that use, or None when it
        ran out meanwhile."""
        try:
            with self._lock:
                row = self._db.execute(
                    "UPDATE grants SET uses = uses + 1 WHERE id = ? AND uses < max_uses AND "
                    "revoked_at IS NULL AND expires_at > ? RETURNING uses",
                    (grant_id, now)).fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"grants: {e}") from e
        return int(row[0]) if row else None

    def revoke(self, grant_id: str, now: str) -> bool:
        return self._change("UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS "
                            "NULL", (now, grant_id)) == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()
