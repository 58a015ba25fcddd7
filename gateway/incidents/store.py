"""Where incidents are kept. Ids are sequential (`INC-0001`), as responders say them aloud."""

from __future__ import annotations

import abc
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from gateway.sqlite import open_database
from gateway.store import StoreError


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    title: str
    severity: str
    opened_at: str
    opened_by: str  # a person, or `trigger:<id>`
    agent: str | None
    request_id: str | None  # the bad call, when one is named
    since: str | None  # or the window it happened in
    until: str | None
    evidence: list[str] = field(default_factory=list)  # request ids behind a trigger
    halt_id: str | None = None  # the containment, if any
    contained_at: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class IncidentStore(abc.ABC):
    @abc.abstractmethod
    def add(self, incident: Incident) -> Incident:
        """Store it under the next `INC-NNNN` id (whatever `id` it carries); the stored one."""

    @abc.abstractmethod
    def get(self, incident_id: str) -> Incident | None: ...

    @abc.abstractmethod
    def list(self, *, limit: int) -> list[Incident]:
        """Newest first."""

    @abc.abstractmethod
    def contained(self, incident_id: str, halt_id: str, at: str) -> Incident | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
"""


def _incident(record: str | bytes) -> Incident:
    return Incident(**orjson.loads(record))


def _numbered(incident: Incident, seq: int) -> Incident:
    """The incident under the `seq`th id."""
    return Incident(**{**incident.to_json(), "id": f"INC-{seq:04d}"})


def _contained(incident: Incident, halt_id: str, at: str) -> Incident:
    return Incident(**{**incident.to_json(), "halt_id": halt_id, "contained_at": at})


class SQLiteIncidentStore(IncidentStore):
    def __init__(self, path: Path) -> None:
        try:
            self._db = open_database(path)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the incident store `{path}`: {e}") from e
        self._lock = threading.Lock()

    def add(self, incident: Incident) -> Incident:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")  # the next number, taken by one writer
                try:
                    (seq,) = self._db.execute(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM incidents").fetchone()
                    stored = _numbered(incident, seq)
                    self._db.execute("INSERT INTO incidents (seq, id, record) VALUES (?, ?, ?)",
                                     (seq, stored.id, orjson.dumps(stored.to_json())))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            return stored
        except sqlite3.Error as e:
            raise StoreError(f"incident store: {e}") from e

    def get(self, incident_id: str) -> Incident | None:
        rows = self._rows("SELECT record FROM incidents WHERE id = ?", (incident_id,))
        return _incident(rows[0][0]) if rows else None

    def list(self, *, limit: int) -> list[Incident]:
        rows = self._rows("SELECT record FROM incidents ORDER BY seq DESC LIMIT ?", (limit,))
        return [_incident(record) for (record,) in rows]

    def contained(self, incident_id: str, halt_id: str, at: str) -> Incident | None:
        incident = self.get(incident_id)
        if incident is None:
            return None
        updated = _contained(incident, halt_id, at)
        self._rows("UPDATE incidents SET record = ? WHERE id = ?",
                   (orjson.dumps(updated.to_json()), incident_id))
        return updated

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"incident store: {e}") from e
