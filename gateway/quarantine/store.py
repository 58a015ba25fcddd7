"""Where quarantined responses wait, across restarts.

The bodies themselves are evidence files (`gateway.evidence`); a row holds their digests, what
the scan found and where the item is in its life: `held` → `released` → `delivered`, or
`discarded`. Every change is a compare-and-set, so two reviewers, or a release and a retry,
race on an item and exactly one wins.
"""

from __future__ import annotations

import abc
import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from gateway.sqlite import open_database
from gateway.store import StoreError


class State(StrEnum):
    HELD = "held"
    RELEASED = "released"
    DELIVERED = "delivered"
    DISCARDED = "discarded"


class ReleaseAs(StrEnum):
    REDACTED = "redacted"
    ORIGINAL = "original"


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """One held response: the call it answered, the evidence, the findings, the decision."""

    id: str
    created_at: str
    agent: str
    request_id: str
    request_hash: str
    action: str | None
    method: str
    url: str
    status: int
    headers: list[list[str]]  # as received, in order
    original: str  # evidence digest of the body as received (still encoded)
    redacted: str | None  # evidence digest of the decoded, redacted view; None: unscannable
    outcome: str  # `quarantine` (an entity) or `unscannable`
    note: str | None
    records: list[dict[str, Any]] = field(default_factory=list)
    state: State = State.HELD
    released_as: ReleaseAs | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    delivered_at: str | None = None
    delivered_to: str | None = None  # the request id of the retry that received it

    @staticmethod
    def new_id() -> str:
        return "q_" + secrets.token_hex(8)

    def summary(self) -> dict[str, Any]:
        """What every reviewer may see: no body, no digest of the original."""
        return {
            "id": self.id, "state": str(self.state), "created_at": self.created_at,
            "agent": self.agent, "action": self.action, "method": self.method, "url": self.url,
            "request_id": self.request_id, "status": self.status, "outcome": self.outcome,
            "note": self.note, "findings": self.records,
            "released_as": self.released_as and str(self.released_as),
            "decided_by": self.decided_by, "decided_at": self.decided_at, "reason": self.reason,
            "delivered_at": self.delivered_at, "delivered_to": self.delivered_to,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, agent TEXT NOT NULL,
    request_id TEXT NOT NULL, request_hash TEXT NOT NULL, action TEXT, method TEXT NOT NULL,
    url TEXT NOT NULL, status INTEGER NOT NULL, headers TEXT NOT NULL, original TEXT NOT NULL,
    redacted TEXT, outcome TEXT NOT NULL, note TEXT, records TEXT NOT NULL,
    state TEXT NOT NULL, released_as TEXT, decided_by TEXT, decided_at TEXT, reason TEXT,
    delivered_at TEXT, delivered_to TEXT);
CREATE INDEX IF NOT EXISTS quarantine_retry ON quarantine (agent, request_hash, created_at);
CREATE INDEX IF NOT EXISTS quarantine_state ON quarantine (state, created_at);
"""
_COLUMNS = ("id, created_at, agent, request_id, request_hash, action, method, url, status, "
            "headers, original, redacted, outcome, note, records, state, released_as, "
            "decided_by, decided_at, reason, delivered_at, delivered_to")


def _item(row: tuple[Any, ...]) -> QuarantineItem:
    values = list(row)
    values[9] = orjson.loads(values[9])
    values[14] = orjson.loads(values[14])
    values[15] = State(values[15])
    values[16] = ReleaseAs(values[16]) if values[16] else None
    return QuarantineItem(*values)


class QuarantineStore(abc.ABC):
    """Where quarantined responses wait; `decide` and `deliver` are compare-and-sets."""

    @abc.abstractmethod
    def add(self, item: QuarantineItem) -> None: ...

    @abc.abstractmethod
    def get(self, item_id: str) -> QuarantineItem | None: ...

    @abc.abstractmethod
    def list(self, *, state: State | None, agent: str | None,
             limit: int) -> list[QuarantineItem]:
        """Items matching the filters given, oldest first."""

    @abc.abstractmethod
    def open_items(self) -> list[QuarantineItem]:
        """Items still held or released (not yet delivered or discarded)."""

    @abc.abstractmethod
    def latest_for(self, agent: str, request_hash: str) -> QuarantineItem | None:
        """The newest item of this agent for this exact request."""

    @abc.abstractmethod
    def decide(self, item_id: str, *, to: State, released_as: ReleaseAs | None, by: str,
               at: str, reason: str, from_states: tuple[State, ...]) -> QuarantineItem | None:
        """Move the item to `to` if it is in one of `from_states`; None when it was not."""

    @abc.abstractmethod
    def deliver(self, item_id: str, *, at: str, request_id: str) -> QuarantineItem | None:
        """Mark a released item delivered, once; None when it was no longer released."""

    @abc.abstractmethod
    def undeliver(self, item_id: str) -> None:
        """Undo `deliver` when the delivery could not be recorded."""

    @abc.abstractmethod
    def close(self) -> None: ...


class SQLiteQuarantineStore(QuarantineStore):
    def __init__(self, path: Path) -> None:
        try:
            self._db = open_database(path)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the quarantine in `{path}`: {e}") from e
        self._lock = threading.Lock()

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[QuarantineItem]:
        try:
            with self._lock:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM quarantine {sql}", args)
                return [_item(row) for row in rows.fetchall()]
        except sqlite3.Error as e:
            raise StoreError(f"quarantine: {e}") from e

    def add(self, item: QuarantineItem) -> None:
        values = (item.id, item.created_at, item.agent, item.request_id, item.request_hash,
                  item.action, item.method, item.url, item.status,
                  orjson.dumps(item.headers).decode(), item.original, item.redacted,
                  item.outcome, item.note, orjson.dumps(item.records).decode(), str(item.state),
                  None, None, None, None, None, None)
        marks = ", ".join("?" * len(values))
        try:
            with self._lock:
                self._db.execute(f"INSERT INTO quarantine ({_COLUMNS}) VALUES ({marks})", values)
        except sqlite3.Error as e:
            raise StoreError(f"quarantine: {e}") from e

    def get(self, item_id: str) -> QuarantineItem | None:
        found = self._query("WHERE id = ?", (item_id,))
        return found[0] if found else None

    def list(self, *, state: State | None, agent: str | None, limit: int) -> list[QuarantineItem]:
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(str(state))
        if agent is not None:
            where.append("agent = ?")
            args.append(agent)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._query(f"{clause}ORDER BY created_at, id LIMIT ?", (*args, limit))

    def open_items(self) -> list[QuarantineItem]:
        """Items still held or released (not yet delivered or discarded)."""
        return self._query("WHERE state IN ('held', 'released')")

    def latest_for(self, agent: str, request_hash: str) -> QuarantineItem | None:
        """The newest item of this agent for this exact request."""
        found = self._query("WHERE agent = ? AND request_hash = ? "
                            "ORDER BY created_at DESC, rowid DESC LIMIT 1", (agent, request_hash))
        return found[0] if found else None

    def decide(self, item_id: str, *, to: State, released_as: ReleaseAs | None, by: str,
               at: str, reason: str, from_states: tuple[State, ...]) -> QuarantineItem | None:
        """Move the item to `to` if it is in one of `from_states`; None when it was not."""
        marks = ", ".join("?" * len(from_states))
        return self._update(
            f"state = ?, released_as = ?, decided_by = ?, decided_at = ?, reason = ? "
            f"WHERE id = ? AND state IN ({marks})",
            (str(to), released_as and str(released_as), by, at, reason, item_id,
             *map(str, from_states)))

    def deliver(self, item_id: str, *, at: str, request_id: str) -> QuarantineItem | None:
        """Mark a released item delivered, once; None when it was no longer released."""
        return self._update("state = 'delivered', delivered_at = ?, delivered_to = ? "
                            "WHERE id = ? AND state = 'released'", (at, request_id, item_id))

    def undeliver(self, item_id: str) -> None:
        """Undo `deliver` when the delivery could not be recorded."""
        self._update("state = 'released', delivered_at = NULL, delivered_to = NULL "
                     "WHERE id = ? AND state = 'delivered'", (item_id,))

    def _update(self, sql: str, args: tuple[object, ...]) -> QuarantineItem | None:
        try:
            with self._lock:
                row = self._db.execute(f"UPDATE quarantine SET {sql} RETURNING {_COLUMNS}",
                                       args).fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"quarantine: {e}") from e
        return _item(row) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
