"""Tokens, halts and policy snapshots on PostgreSQL: `gateway.store.StateStore`."""

from __future__ import annotations

from gateway.clock import utc_now_iso
from gateway.halts import Halt
from gateway.postgres.database import Database
from gateway.postgres.notify import HALTS, announce
from gateway.store import _HALT_COLUMNS, StateStore, StoreError
from gateway.tokens import Principal, Role, hash_token, token_id

_SNAPSHOT_KEYS = ("snapshot_id", "revision", "source", "first_active_at", "last_active_at")


class PostgresStateStore(StateStore):
    def __init__(self, url: str) -> None:
        self._db = Database(url, "state store")

    def add_token(self, kind: str, name: str, role: Role | None, token: str) -> None:
        tid = token_id(token)
        if tid is None:
            raise StoreError("not a Gatehouse token")
        self._db.change(
            "INSERT INTO tokens (id, hash, kind, name, role, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (tid, hash_token(token), kind, name, role.value if role else None, utc_now_iso()))

    def token_by_id(self, token_id: str) -> tuple[str, Principal] | None:
        rows = self._db.rows("SELECT hash, kind, name, role FROM tokens WHERE id = %s",
                             (token_id,))
        if not rows:
            return None
        stored, kind, name, role = rows[0]
        return stored, Principal(kind=kind, name=name, role=Role(role) if role else None)

    def has_agent_tokens(self) -> bool:
        return bool(self._db.rows("SELECT 1 FROM tokens WHERE kind = 'agent' LIMIT 1"))

    def has_person_tokens(self) -> bool:
        return bool(self._db.rows("SELECT 1 FROM tokens WHERE kind = 'person' LIMIT 1"))

    def agent_names(self) -> set[str]:
        return {row[0] for row in self._db.rows("SELECT DISTINCT name FROM tokens "
                                                "WHERE kind = 'agent'")}

    def add_halt(self, halt: Halt) -> None:
        """Every replica hears of it (`gateway.postgres.notify`) once it is stored."""
        with self._db.transaction() as db:
            db.execute(
                f"INSERT INTO halts ({_HALT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (halt.id, halt.scope, halt.target, halt.reason, halt.actor, halt.created_at,
                 halt.lifted_at, halt.lifted_by, halt.mode))
            announce(db, HALTS, halt.id)

    def lift_halt(self, halt_id: str, actor: str) -> Halt | None:
        """Lifted once: of two responders lifting together, one gets the halt back."""
        with self._db.transaction() as db:
            row = db.execute(
                f"UPDATE halts SET lifted_at = %s, lifted_by = %s WHERE id = %s "
                f"AND lifted_at IS NULL RETURNING {_HALT_COLUMNS}",
                (utc_now_iso(), actor, halt_id)).fetchone()
            if row is None:
                return None
            announce(db, HALTS, halt_id)
        return Halt(*row)

    def get_halt(self, halt_id: str) -> Halt | None:
        rows = self._db.rows(f"SELECT {_HALT_COLUMNS} FROM halts WHERE id = %s", (halt_id,))
        return Halt(*rows[0]) if rows else None

    def halts(self, *, active_only: bool) -> list[Halt]:
        where = "WHERE lifted_at IS NULL" if active_only else ""
        rows = self._db.rows(f"SELECT {_HALT_COLUMNS} FROM halts {where} "
                             "ORDER BY created_at, id")
        return [Halt(*row) for row in rows]

    def record_snapshot(self, snapshot_id: str, revision: str, source: str, text: str) -> None:
        now = utc_now_iso()
        self._db.change(
            "INSERT INTO policy_snapshots VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (snapshot_id) DO UPDATE SET last_active_at = excluded.last_active_at",
            (snapshot_id, revision, source, text, now, now))

    def snapshots(self) -> list[dict[str, object]]:
        rows = self._db.rows(f"SELECT {', '.join(_SNAPSHOT_KEYS)} FROM policy_snapshots "
                             "ORDER BY first_active_at, snapshot_id")
        return [dict(zip(_SNAPSHOT_KEYS, row, strict=True)) for row in rows]

    def snapshot(self, snapshot_id: str) -> dict[str, object] | None:
        keys = (*_SNAPSHOT_KEYS, "text")
        rows = self._db.rows(f"SELECT {', '.join(keys)} FROM policy_snapshots "
                             "WHERE snapshot_id = %s", (snapshot_id,))
        return dict(zip(keys, rows[0], strict=True)) if rows else None

    def close(self) -> None:
        self._db.close()
