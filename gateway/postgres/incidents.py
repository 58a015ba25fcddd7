"""Incidents on PostgreSQL: `gateway.incidents.store.IncidentStore`."""

from __future__ import annotations

import orjson

from gateway.incidents.store import Incident, IncidentStore, _contained, _incident, _numbered
from gateway.postgres.database import Database

# pg_advisory_xact_lock key of incident numbers: "incident" in ASCII
NUMBER_LOCK_KEY = 0x696E636964656E74


class PostgresIncidentStore(IncidentStore):
    """The next number is taken under an advisory lock, so replicas opening incidents together
    get consecutive ids, never the same one and never a gap."""

    def __init__(self, url: str) -> None:
        self._db = Database(url, "incident store")

    def add(self, incident: Incident) -> Incident:
        with self._db.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (NUMBER_LOCK_KEY,))
            (seq,) = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM incidents").fetchone()
            stored = _numbered(incident, seq)
            db.execute("INSERT INTO incidents (seq, id, record) VALUES (%s, %s, %s)",
                       (seq, stored.id, orjson.dumps(stored.to_json()).decode()))
        return stored

    def get(self, incident_id: str) -> Incident | None:
        rows = self._db.rows("SELECT record FROM incidents WHERE id = %s", (incident_id,))
        return _incident(rows[0][0]) if rows else None

    def list(self, *, limit: int) -> list[Incident]:
        rows = self._db.rows("SELECT record FROM incidents ORDER BY seq DESC LIMIT %s", (limit,))
        return [_incident(record) for (record,) in rows]

    def contained(self, incident_id: str, halt_id: str, at: str) -> Incident | None:
        with self._db.transaction() as db:
            row = db.execute("SELECT record FROM incidents WHERE id = %s FOR UPDATE",
                             (incident_id,)).fetchone()
            if row is None:
                return None
            updated = _contained(_incident(row[0]), halt_id, at)
            db.execute("UPDATE incidents SET record = %s WHERE id = %s",
                       (orjson.dumps(updated.to_json()).decode(), incident_id))
        return updated

    def close(self) -> None:
        self._db.close()
