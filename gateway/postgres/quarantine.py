"""Quarantined responses on PostgreSQL: `gateway.quarantine.store.QuarantineStore`."""

from __future__ import annotations

import orjson

from gateway.postgres.database import Database
from gateway.quarantine.store import (
    _COLUMNS,
    QuarantineItem,
    QuarantineStore,
    ReleaseAs,
    State,
    _item,
)


class PostgresQuarantineStore(QuarantineStore):
    """Every change is one conditional UPDATE ... RETURNING: a release racing a discard, or
    two retries racing for a released body on two gateways, has exactly one winner."""

    def __init__(self, url: str) -> None:
        self._db = Database(url, "quarantine")

    def _items(self, sql: str, args: tuple[object, ...] = ()) -> list[QuarantineItem]:
        return [_item(row) for row in self._db.rows(f"SELECT {_COLUMNS} FROM quarantine {sql}",
                                                     args)]

    def add(self, item: QuarantineItem) -> None:
        self._db.change(
            "INSERT INTO quarantine (id, created_at, agent, request_id, request_hash, action, "
            "method, url, status, headers, original, redacted, outcome, note, records, state) "
            f"VALUES ({', '.join(['%s'] * 16)})",
            (item.id, item.created_at, item.agent, item.request_id, item.request_hash,
             item.action, item.method, item.url, item.status, orjson.dumps(item.headers).decode(),
             item.original, item.redacted, item.outcome, item.note,
             orjson.dumps(item.records).decode(), str(item.state)))

    def get(self, item_id: str) -> QuarantineItem | None:
        found = self._items("WHERE id = %s", (item_id,))
        return found[0] if found else None

    def list(self, *, state: State | None, agent: str | None,
             limit: int) -> list[QuarantineItem]:
        return self._items("WHERE (%s::text IS NULL OR state = %s) "
                           "AND (%s::text IS NULL OR agent = %s) "
                           "ORDER BY created_at, id LIMIT %s",
                           (state, state, agent, agent, limit))

    def open_items(self) -> list[QuarantineItem]:
        return self._items("WHERE state IN ('held', 'released') ORDER BY seq")

    def latest_for(self, agent: str, request_hash: str) -> QuarantineItem | None:
        found = self._items("WHERE agent = %s AND request_hash = %s "
                            "ORDER BY created_at DESC, seq DESC LIMIT 1", (agent, request_hash))
        return found[0] if found else None

    def decide(self, item_id: str, *, to: State, released_as: ReleaseAs | None, by: str,
               at: str, reason: str, from_states: tuple[State, ...]) -> QuarantineItem | None:
        return self._update("state = %s, released_as = %s, decided_by = %s, decided_at = %s, "
                            "reason = %s WHERE id = %s AND state = ANY(%s)",
                            (str(to), released_as and str(released_as), by, at, reason,
                             item_id, [str(s) for s in from_states]))

    def deliver(self, item_id: str, *, at: str, request_id: str) -> QuarantineItem | None:
        return self._update("state = 'delivered', delivered_at = %s, delivered_to = %s "
                            "WHERE id = %s AND state = 'released'", (at, request_id, item_id))

    def undeliver(self, item_id: str) -> None:
        self._update("state = 'released', delivered_at = NULL, delivered_to = NULL "
                     "WHERE id = %s AND state = 'delivered'", (item_id,))

    def _update(self, sql: str, args: tuple[object, ...]) -> QuarantineItem | None:
        rows = self._db.rows(f"UPDATE quarantine SET {sql} RETURNING {_COLUMNS}", args)
        return _item(rows[0]) if rows else None

    def close(self) -> None:
        self._db.close()
