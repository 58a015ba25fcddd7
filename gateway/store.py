"""Durable state other than the audit trail: tokens, halts, policy snapshots.

`StateStore` is the interface; `SQLiteStore` is the embedded default in the state directory.
Calls are small and rare next to proxy traffic (token lookups are cached per connection by the
proxy), so they run synchronously; the audit trail, which is written on every call, has its own
group-committing writer (`gateway.audit`).
"""

from __future__ import annotations

import abc
import sqlite3
import threading
from pathlib import Path

from gateway.clock import utc_now_iso
from gateway.halts import Halt
from gateway.sqlite import open_database
from gateway.tokens import Principal, Role, hash_token, token_id, token_matches


class StoreError(RuntimeError):
    """The state store could not be read or written."""


class StateStore(abc.ABC):
    """What the gateway keeps across restarts (besides the audit trail)."""

    @abc.abstractmethod
    def add_token(self, kind: str, name: str, role: Role | None, token: str) -> None:
        """Keep a new token's id and hash (never the token itself)."""

    @abc.abstractmethod
    def token_by_id(self, token_id: str) -> tuple[str, Principal] | None:
        """(stored hash, owner) of the token with this public id."""

    def find_token(self, token: str) -> Principal | None:
        """Who the token belongs to, or None; the hash is compared in constant time."""
        tid = token_id(token)
        found = self.token_by_id(tid) if tid else None
        if found is None or not token_matches(token, found[0]):
            return None
        return found[1]

    @abc.abstractmethod
    def has_agent_tokens(self) -> bool: ...

    @abc.abstractmethod
    def has_person_tokens(self) -> bool: ...

    @abc.abstractmethod
    def agent_names(self) -> set[str]:
        """Every agent that has a token."""

    @abc.abstractmethod
    def add_halt(self, halt: Halt) -> None: ...

    @abc.abstractmethod
    def lift_halt(self, halt_id: str, actor: str) -> Halt | None:
        """Lift an active halt; None when no such active halt exists."""

    @abc.abstractmethod
    def get_halt(self, halt_id: str) -> Halt | None: ...

    @abc.abstractmethod
    def halts(self, *, active_only: bool) -> list[Halt]: ...

    @abc.abstractmethod
    def record_snapshot(self, snapshot_id: str, revision: str, source: str, text: str) -> None:
        """Keep a policy snapshot that became active, so incidents can ask which rules were."""

    @abc.abstractmethod
    def snapshots(self) -> list[dict[str, object]]: ...

    @abc.abstractmethod
    def snapshot(self, snapshot_id: str) -> dict[str, object] | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, role TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS halts (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL,
    actor TEXT NOT NULL, created_at TEXT NOT NULL, lifted_at TEXT, lifted_by TEXT,
    mode TEXT NOT NULL DEFAULT 'halt');
CREATE TABLE IF NOT EXISTS policy_snapshots (
    snapshot_id TEXT PRIMARY KEY, revision TEXT NOT NULL, source TEXT NOT NULL,
    text TEXT NOT NULL, first_active_at TEXT NOT NULL, last_active_at TEXT NOT NULL);
"""

_HALT_COLUMNS = "id, scope, target, reason, actor, created_at, lifted_at, lifted_by, mode"


def _add_mode_to_halts(db: sqlite3.Connection) -> None:
    """A state file from before shadow mode: its halts are all plain halts."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(halts)")}
    if "id" in columns and "mode" not in columns:
        db.execute("ALTER TABLE halts ADD COLUMN mode TEXT NOT NULL DEFAULT 'halt'")


class SQLiteStore(StateStore):
    def __init__(self, path: Path) -> None:
        try:
            self._db = open_database(path)
            self._db.executescript(_SCHEMA)
            _add_mode_to_halts(self._db)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the state store `{path}`: {e}") from e
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"state store: {e}") from e

    def _change(self, sql: str, args: tuple[object, ...]) -> int:
        try:
            with self._lock:
                return self._db.execute(sql, args).rowcount
        except sqlite3.Error as e:
            raise StoreError(f"state store: {e}") from e

    def add_token(self, kind: str, name: str, role: Role | None, token: str) -> None:
        tid = token_id(token)
        if tid is None:
            raise StoreError("not a Gatehouse token")
        self._change(
            "INSERT INTO tokens (id, hash, kind, name, role, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (tid, hash_token(token), kind, name, role.value if role else None, utc_now_iso()),
        )

    def token_by_id(self, token_id: str) -> tuple[str, Principal] | None:
        rows = self._run("SELECT hash, kind, name, role FROM tokens WHERE id = ?", (token_id,))
        if not rows:
            return None
        stored, kind, name, role = rows[0]
        return str(stored), Principal(kind=str(kind), name=str(name),
                                      role=Role(role) if role else None)

    def has_agent_tokens(self) -> bool:
        return bool(self._run("SELECT 1 FROM tokens WHERE kind = 'agent' LIMIT 1"))

    def has_person_tokens(self) -> bool:
        return bool(self._run("SELECT 1 FROM tokens WHERE kind = 'person' LIMIT 1"))

    def agent_names(self) -> set[str]:
        return {str(row[0]) for row in self._run("SELECT DISTINCT name FROM tokens "
                                                 "WHERE kind = 'agent'")}

    def add_halt(self, halt: Halt) -> None:
        self._change(
            f"INSERT INTO halts ({_HALT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (halt.id, halt.scope, halt.target, halt.reason, halt.actor, halt.created_at,
             halt.lifted_at, halt.lifted_by, halt.mode),
        )

    def lift_halt(self, halt_id: str, actor: str) -> Halt | None:
        changed = self._change(
            "UPDATE halts SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL",
            (utc_now_iso(), actor, halt_id),
        )
        return self.get_halt(halt_id) if changed else None

    def get_halt(self, halt_id: str) -> Halt | None:
        rows = self._run(f"SELECT {_HALT_COLUMNS} FROM halts WHERE id = ?", (halt_id,))
        return Halt(*rows[0]) if rows else None  # type: ignore[arg-type]

    def halts(self, *, active_only: bool) -> list[Halt]:
        where = "WHERE lifted_at IS NULL" if active_only else ""
        rows = self._run(f"SELECT {_HALT_COLUMNS} FROM halts {where} ORDER BY created_at")
        return [Halt(*row) for row in rows]  # type: ignore[arg-type]

    def record_snapshot(self, snapshot_id: str, revision: str, source: str, text: str) -> None:
        now = utc_now_iso()
        self._change(
            "INSERT INTO policy_snapshots VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(snapshot_id) "
            "DO UPDATE SET last_active_at = excluded.last_active_at",
            (snapshot_id, revision, source, text, now, now),
        )

    def snapshots(self) -> list[dict[str, object]]:
        rows = self._run(
            "SELECT snapshot_id, revision, source, first_active_at, last_active_at "
            "FROM policy_snapshots ORDER BY first_active_at"
        )
        keys = ("snapshot_id", "revision", "source", "first_active_at", "last_active_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def snapshot(self, snapshot_id: str) -> dict[str, object] | None:
        rows = self._run(
            "SELECT snapshot_id, revision, source, first_active_at, last_active_at, text "
            "FROM policy_snapshots WHERE snapshot_id = ?", (snapshot_id,))
        keys = ("snapshot_id", "revision", "source", "first_active_at", "last_active_at", "text")
        return dict(zip(keys, rows[0], strict=True)) if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
