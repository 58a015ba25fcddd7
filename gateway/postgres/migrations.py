"""The PostgreSQL schema as numbered steps, applied once each, in order, at open.

A replica that starts applies what is missing, all in one transaction under an advisory lock:
two replicas starting together take turns, and the second finds nothing left to do. DDL is
transactional in PostgreSQL, so a step that fails leaves the schema as it was. Steps are never
edited once released; a change is a new step.

Text columns that are compared or ordered (ids, UTC ISO times) use the "C" collation, so they
sort byte by byte as in SQLite whatever the database's locale. JSON is kept as text and bodies
as bytea, so both backends share one row codec per store. `seq` columns give the insertion order
SQLite's rowid gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from gateway.store import StoreError

# pg_advisory_xact_lock key of schema changes: "gatehous" in ASCII
LOCK_KEY = 0x6761746568_6F7573


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tokens, halts and policy snapshots", """
CREATE TABLE tokens (
    id text COLLATE "C" PRIMARY KEY, hash text NOT NULL, kind text NOT NULL,
    name text NOT NULL, role text, created_at text COLLATE "C" NOT NULL);
CREATE TABLE halts (
    id text COLLATE "C" PRIMARY KEY, scope text NOT NULL, target text NOT NULL,
    reason text NOT NULL, actor text NOT NULL, created_at text COLLATE "C" NOT NULL,
    lifted_at text COLLATE "C", lifted_by text);
CREATE INDEX halts_active ON halts (created_at) WHERE lifted_at IS NULL;
CREATE TABLE policy_snapshots (
    snapshot_id text COLLATE "C" PRIMARY KEY, revision text NOT NULL, source text NOT NULL,
    text text NOT NULL, first_active_at text COLLATE "C" NOT NULL,
    last_active_at text COLLATE "C" NOT NULL);
"""),
    Migration(2, "pending items, their votes and openings", """
CREATE TABLE pending_items (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text COLLATE "C" PRIMARY KEY, request_hash text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL, tenant text, action text COLLATE "C" NOT NULL,
    tags text NOT NULL, params text NOT NULL, rule_ids text NOT NULL, reason text NOT NULL,
    rollback text, tier integer NOT NULL, route text COLLATE "C",
    approvals_needed integer NOT NULL, snapshot_id text NOT NULL, request text NOT NULL,
    body bytea NOT NULL, state text COLLATE "C" NOT NULL,
    created_at text COLLATE "C" NOT NULL, expires_at text COLLATE "C" NOT NULL,
    decided_at text COLLATE "C", outcome_reason text, decided_snapshot_id text,
    escalation_level integer NOT NULL DEFAULT 0, earlier_routes text NOT NULL DEFAULT '[]',
    escalate_at text COLLATE "C", expiry_notice_at text COLLATE "C",
    assigned_to text COLLATE "C", assigned_at text COLLATE "C",
    second_review integer NOT NULL DEFAULT 0 CHECK (second_review IN (0, 1)));
CREATE INDEX pending_items_by_request ON pending_items (agent, request_hash);
CREATE INDEX pending_items_by_state ON pending_items (state, expires_at);
CREATE INDEX pending_items_by_age ON pending_items (created_at);
CREATE INDEX pending_items_by_decision ON pending_items (decided_at);
CREATE INDEX pending_items_by_assignee ON pending_items (assigned_to, state);
CREATE TABLE pending_votes (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    item_id text COLLATE "C" NOT NULL REFERENCES pending_items (id),
    reviewer text COLLATE "C" NOT NULL,
    verdict text NOT NULL CHECK (verdict IN ('approve', 'deny')), reason text NOT NULL,
    at text COLLATE "C" NOT NULL, opened_at text, PRIMARY KEY (item_id, reviewer));
CREATE INDEX pending_votes_by_reviewer ON pending_votes (reviewer, at);
CREATE INDEX pending_votes_by_time ON pending_votes (at);
CREATE TABLE pending_opens (
    item_id text COLLATE "C" NOT NULL REFERENCES pending_items (id),
    reviewer text COLLATE "C" NOT NULL, opened_at text NOT NULL,
    PRIMARY KEY (item_id, reviewer));
"""),
    Migration(3, "standing grants", """
CREATE TABLE grants (
    id text COLLATE "C" PRIMARY KEY, agent text COLLATE "C" NOT NULL, action text NOT NULL,
    params text NOT NULL, reason text NOT NULL, created_by text NOT NULL,
    created_at text COLLATE "C" NOT NULL, expires_at text COLLATE "C" NOT NULL,
    max_uses integer NOT NULL, uses integer NOT NULL DEFAULT 0, revoked_at text);
CREATE INDEX grants_agent ON grants (agent, expires_at);
"""),
    Migration(4, "quarantined responses", """
CREATE TABLE quarantine (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text COLLATE "C" PRIMARY KEY, created_at text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL, request_id text NOT NULL,
    request_hash text COLLATE "C" NOT NULL, action text, method text NOT NULL,
    url text NOT NULL, status integer NOT NULL, headers text NOT NULL, original text NOT NULL,
    redacted text, outcome text NOT NULL, note text, records text NOT NULL,
    state text COLLATE "C" NOT NULL, released_as text, decided_by text, decided_at text,
    reason text, delivered_at text, delivered_to text);
CREATE INDEX quarantine_retry ON quarantine (agent, request_hash, created_at);
CREATE INDEX quarantine_state ON quarantine (state, created_at);
"""),
    Migration(5, "the audit trail, its checkpoints and head anchor", """
CREATE TABLE audit (
    seq bigint PRIMARY KEY, ts text COLLATE "C" NOT NULL, event text COLLATE "C" NOT NULL,
    agent text COLLATE "C", action text COLLATE "C", decision text COLLATE "C",
    prev text NOT NULL, hash text NOT NULL, record text NOT NULL);
CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_event ON audit (event, seq);
CREATE INDEX audit_agent ON audit (agent, seq);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_decision ON audit (decision, seq);
CREATE TABLE checkpoint (
    seq bigint PRIMARY KEY, hash text NOT NULL, ts text NOT NULL, key_id text NOT NULL,
    signature text NOT NULL);
CREATE TABLE audit_head (
    id integer PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash text NOT NULL);
INSERT INTO audit_head VALUES (1, 0, repeat('0', 64));
"""),
    Migration(6, "incidents", """
CREATE TABLE incidents (
    seq bigint PRIMARY KEY, id text COLLATE "C" NOT NULL UNIQUE, record text NOT NULL);
"""),
    Migration(7, "shadow mode: a halt resumed in shadow withholds writes only", """
ALTER TABLE halts ADD COLUMN mode text COLLATE "C" NOT NULL DEFAULT 'halt';
"""),
)

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())
"""


def migrate(db: psycopg.Connection[Any]) -> list[int]:
    """Apply the steps this database lacks; the versions applied now (none when it was up to
    date). A database migrated by a newer Gatehouse is refused rather than misread."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        db.execute(_LEDGER)
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        newest = MIGRATIONS[-1].version
        if done and max(done) > newest:
            raise StoreError(f"the database schema is at version {max(done)}, newer than this "
                             f"Gatehouse knows ({newest}); run the newer Gatehouse or upgrade")
        applied = []
        for step in MIGRATIONS:
            if step.version not in done:
                db.execute(step.sql)
                db.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                           (step.version, step.name))
                applied.append(step.version)
    return applied
