"""Which backend keeps a gateway's state, as `--store` names it: `sqlite` (files in the state
directory, the default) or a `postgresql://` URL (one database for every replica).

Either way the state directory keeps what is a file by nature: the CA, the audit signing key
and the evidence files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.approvals.grants import GrantStore, SQLiteGrantStore
from gateway.approvals.store import PendingStore, SQLitePendingStore
from gateway.audit import AuditLog, Trail
from gateway.incidents.store import IncidentStore, SQLiteIncidentStore
from gateway.postgres.audit import PostgresAuditLog, PostgresTrail
from gateway.postgres.database import SCHEMES, safe_url
from gateway.postgres.grants import PostgresGrantStore
from gateway.postgres.incidents import PostgresIncidentStore
from gateway.postgres.pending import PostgresPendingStore
from gateway.postgres.quarantine import PostgresQuarantineStore
from gateway.postgres.state import PostgresStateStore
from gateway.quarantine.store import QuarantineStore, SQLiteQuarantineStore
from gateway.store import SQLiteStore, StateStore

SQLITE = "sqlite"


def check_store(value: str) -> str:
    """`--store` as given, if it names a backend; ValueError says what would."""
    if value != SQLITE and urlsplit(value).scheme not in SCHEMES:
        raise ValueError(f"`{safe_url(value)}` is not a store: use `sqlite` or a "
                         "postgresql://USER@HOST:PORT/DATABASE URL")
    return value


@dataclass(frozen=True, slots=True)
class Backend:
    """Opens each store, and the audit trail, where `store` says."""

    store: str  # `sqlite` or a postgresql:// URL
    state_dir: Path

    @property
    def url(self) -> str | None:
        return None if self.store == SQLITE else self.store

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def audit_db(self) -> Path:
        return self.state_dir / "audit.db"

    def state(self) -> StateStore:
        return PostgresStateStore(self.url) if self.url else SQLiteStore(self.state_db)

    def pending(self) -> PendingStore:
        return PostgresPendingStore(self.url) if self.url else SQLitePendingStore(self.state_db)

    def grants(self) -> GrantStore:
        return PostgresGrantStore(self.url) if self.url else SQLiteGrantStore(self.state_db)

    def quarantine(self) -> QuarantineStore:
        return PostgresQuarantineStore(self.url) if self.url \
            else SQLiteQuarantineStore(self.state_db)

    def incidents(self) -> IncidentStore:
        return PostgresIncidentStore(self.url) if self.url \
            else SQLiteIncidentStore(self.state_db)

    def audit(self) -> AuditLog:
        """The log to append to (raises AuditError)."""
        return PostgresAuditLog(self.url, self.state_dir) if self.url else AuditLog(self.audit_db)

    @contextmanager
    def trail(self) -> Iterator[Path | Trail]:
        """The trail as `verify` and `export` read it (raises AuditError)."""
        if not self.url:
            yield self.audit_db
            return
        trail = PostgresTrail(self.url, self.state_dir)
        try:
            yield trail
        finally:
            trail.close()
