"""Standing grants on PostgreSQL: `gateway.approvals.grants.GrantStore`."""

from __future__ import annotations

import orjson

from gateway.approvals.grants import _COLUMNS, Grant, GrantStore
from gateway.postgres.database import Database, Row


def _grant(row: Row) -> Grant:
    return Grant(row[0], row[1], row[2], orjson.loads(row[3]), *row[4:])


class PostgresGrantStore(GrantStore):
    """A use is one conditional UPDATE ... RETURNING: when gateways race for the last use,
    PostgreSQL re-checks the condition after the first commits, so only one gets it."""

    def __init__(self, url: str) -> None:
        self._db = Database(url, "grants")

    def _grants(self, sql: str, args: tuple[object, ...] = ()) -> list[Grant]:
        return [_grant(row) for row in self._db.rows(f"SELECT {_COLUMNS} FROM grants {sql}",
                                                     args)]

    def add(self, grant: Grant) -> None:
        self._db.change(f"INSERT INTO grants ({_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})",
                        (grant.id, grant.agent, grant.action, orjson.dumps(grant.params).decode(),
                         grant.reason, grant.created_by, grant.created_at, grant.expires_at,
                         grant.max_uses, grant.uses, grant.revoked_at))

    def get(self, grant_id: str) -> Grant | None:
        found = self._grants("WHERE id = %s", (grant_id,))
        return found[0] if found else None

    def list(self, *, active_at: str | None) -> list[Grant]:
        if active_at is None:
            return self._grants("ORDER BY created_at, id")
        return self._grants("WHERE revoked_at IS NULL AND expires_at > %s AND uses < max_uses "
                            "ORDER BY created_at, id", (active_at,))

    def active_for(self, agent: str, now: str) -> list[Grant]:
        return self._grants("WHERE agent = %s AND revoked_at IS NULL AND expires_at > %s "
                            "AND uses < max_uses ORDER BY created_at, id", (agent, now))

    def use(self, grant_id: str, now: str) -> int | None:
        rows = self._db.rows("UPDATE grants SET uses = uses + 1 WHERE id = %s "
                             "AND uses < max_uses AND revoked_at IS NULL AND expires_at > %s "
                             "RETURNING uses", (grant_id, now))
        return int(rows[0][0]) if rows else None

    def revoke(self, grant_id: str, now: str) -> bool:
        return self._db.change("UPDATE grants SET revoked_at = %s WHERE id = %s "
                               "AND revoked_at IS NULL", (now, grant_id)) == 1

    def close(self) -> None:
        self._db.close()
