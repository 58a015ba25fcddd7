"""Where held calls wait for their reviewers, across restarts.

`PendingStore` is the interface (a PostgreSQL backend will implement it later);
`SQLitePendingStore` keeps its own tables in the gateway's state database. Every state change
is a compare-and-set inside one write transaction, so two reviewers, the expiry sweep and the
proxy forwarding an approved call can race on an item and exactly one of them wins.
"""

from __future__ import annotations

import abc
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson

from gateway.approvals.assign import Load, choose
from gateway.approvals.model import HeldRequest, PendingItem, QueueEntry, State, Vote
from gateway.clock import utc_now_iso
from gateway.sqlite import open_database
from gateway.store import StoreError


class PendingConflict(Exception):
    """The item is not in a state that allows this (or the reviewer has already voted)."""

    def __init__(self, state: State, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


class PendingStore(abc.ABC):
    """Held calls and their votes. Ids that name no item raise KeyError (items are never
    deleted, so an id once seen stays valid)."""

    @abc.abstractmethod
    def add(self, item: PendingItem) -> None:
        """Keep a new item; it has no votes yet (they arrive through `vote`)."""

    @abc.abstractmethod
    def get(self, item_id: str) -> PendingItem | None:
        """The item with its votes, oldest first."""

    @abc.abstractmethod
    def find_reusable(self, agent: str, request_hash: str) -> PendingItem | None:
        """The newest item of this agent for this request hash, which a byte-identical retry
        attaches to: still waiting, approved and not yet used, or decided against (a denied or
        expired call stays refused; it is not queued again). None once the newest approval has
        been used: the next identical call needs an approval of its own."""

    @abc.abstractmethod
    def list(self, *, states: Collection[State] | None = None, route: str | None = None,
             agent: str | None = None, action: str | None = None,
             assigned_to: str | None = None, limit: int = 100) -> list[PendingItem]:
        """Items matching every filter given, oldest first."""

    @abc.abstractmethod
    def assign(self, item_id: str, members: Collection[str], cap: int | None) -> PendingItem:
        """(Re)assign a PENDING item to the member `assign.choose` picks from the open items
        assigned to each (this one aside), atomically, so two new items cannot both take a
        reviewer's last place under the cap; None when all are at it. A decided item is
        returned unchanged."""

    @abc.abstractmethod
    def opened(self, item_id: str, reviewer: str) -> str:
        """Record the reviewer's first opening of the item (minimum review time counts from it)
        and return it; later calls keep and return the first time."""

    @abc.abstractmethod
    def first_opened(self, item_id: str, reviewer: str) -> str | None: ...

    @abc.abstractmethod
    def vote(self, item_id: str, vote: Vote, *, approvals_needed: int,
             snapshot_id: str | None = None, second_review: bool = False) -> PendingItem:
        """Record a vote on a PENDING item, atomically. A deny makes it DENIED at once;
        `approvals_needed` distinct approvals make it APPROVED under `snapshot_id`, unless
        `second_review` (drawn by the caller) and the item has not had one yet: then it stays
        PENDING, marked `second_review`, needing one approval more. Raises PendingConflict if
        the item is not PENDING or this reviewer has already voted."""

    @abc.abstractmethod
    def approval_times(self, reviewer: str, since: str) -> list[str]:
        """When `reviewer` approved anything at or after `since`, oldest first (cooldown)."""

    @abc.abstractmethod
    def votes_since(self, since: str) -> list[Vote]:
        """Every vote cast at or after `since`, oldest first (review times)."""

    @abc.abstractmethod
    def queue_entries(self, since: str) -> list[QueueEntry]:
        """Items still PENDING, and items decided at or after `since`, oldest first."""

    @abc.abstractmethod
    def open_by_route(self) -> dict[str | None, int]:
        """How many items are PENDING, by route."""

    @abc.abstractmethod
    def consume(self, item_id: str) -> bool:
        """APPROVED -> CONSUMED, exactly once: True for the one caller that may forward it,
        False for everyone else (and for an item that is not APPROVED or does not exist)."""

    @abc.abstractmethod
    def finish(self, item_id: str, to: State, reason: str, *,
               expected: Collection[State] = (State.PENDING,)) -> PendingItem:
        """Move the item to `to` if it is in one of `expected` (expiry, cancellation, denial by
        a changed policy); raises PendingConflict otherwise."""

    @abc.abstractmethod
    def due(self, now_iso: str) -> list[str]:
        """Ids of PENDING items whose `expires_at` is at or before `now_iso`, soonest first."""

    @abc.abstractmethod
    def escalate(self, item_id: str, route: str, *, from_level: int, escalate_at: str | None,
                 expires_at: str | None = None,
                 expiry_notice_at: str | None = None) -> PendingItem:
        """Route a PENDING item still at `from_level` to `route`, atomically: its current route
        joins `earlier_routes`, the level goes up by one and `escalate_at` is set; with
        `expires_at`, the item gets that new deadline and `expiry_notice_at`. Raises
        PendingConflict if it was decided or escalated meanwhile."""

    @abc.abstractmethod
    def stop_escalating(self, item_id: str) -> None:
        """Clear `escalate_at` (no group is left to move to)."""

    @abc.abstractmethod
    def escalations_due(self, now_iso: str) -> list[str]:
        """Ids of PENDING items whose `escalate_at` is at or before `now_iso`, soonest first."""

    @abc.abstractmethod
    def expiry_notices_due(self, now_iso: str) -> list[str]:
        """Ids of PENDING items whose `expiry_notice_at` is at or before `now_iso`."""

    @abc.abstractmethod
    def take_expiry_notice(self, item_id: str) -> PendingItem | None:
        """Clear a PENDING item's `expiry_notice_at`, once: the item for the one caller that
        sends the notice, None for everyone else."""

    @abc.abstractmethod
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_items (
    id TEXT PRIMARY KEY, request_hash TEXT NOT NULL, agent TEXT NOT NULL, tenant TEXT,
    action TEXT NOT NULL, tags TEXT NOT NULL, params TEXT NOT NULL, rule_ids TEXT NOT NULL,
    reason TEXT NOT NULL, rollback TEXT, tier INTEGER NOT NULL, route TEXT,
    approvals_needed INTEGER NOT NULL, snapshot_id TEXT NOT NULL, request TEXT NOT NULL,
    body BLOB NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    decided_at TEXT, outcome_reason TEXT, decided_snapshot_id TEXT,
    escalation_level INTEGER NOT NULL DEFAULT 0, earlier_routes TEXT NOT NULL DEFAULT '[]',
    escalate_at TEXT, expiry_notice_at TEXT, assigned_to TEXT, assigned_at TEXT,
    second_review INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS pending_items_by_request ON pending_items (agent, request_hash);
CREATE INDEX IF NOT EXISTS pending_items_by_state ON pending_items (state, expires_at);
CREATE INDEX IF NOT EXISTS pending_items_by_age ON pending_items (created_at);
CREATE INDEX IF NOT EXISTS pending_items_by_decision ON pending_items (decided_at);
CREATE TABLE IF NOT EXISTS pending_votes (
    item_id TEXT NOT NULL REFERENCES pending_items (id), reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('approve', 'deny')), reason TEXT NOT NULL,
    at TEXT NOT NULL, opened_at TEXT, PRIMARY KEY (item_id, reviewer));
CREATE INDEX IF NOT EXISTS pending_votes_by_reviewer ON pending_votes (reviewer, at);
CREATE INDEX IF NOT EXISTS pending_votes_by_time ON pending_votes (at);
CREATE TABLE IF NOT EXISTS pending_opens (
    item_id TEXT NOT NULL REFERENCES pending_items (id), reviewer TEXT NOT NULL,
    opened_at TEXT NOT NULL, PRIMARY KEY (item_id, reviewer));
"""

# columns added since pending_items was first released, with how to add them to an old table
_ADDED_COLUMNS = (("escalation_level", "INTEGER NOT NULL DEFAULT 0"),
                  ("earlier_routes", "TEXT NOT NULL DEFAULT '[]'"),
                  ("escalate_at", "TEXT"), ("expiry_notice_at", "TEXT"),
                  ("assigned_to", "TEXT"), ("assigned_at", "TEXT"),
                  ("second_review", "INTEGER NOT NULL DEFAULT 0"))
# indexes on added columns, created once the columns exist
_ADDED_INDEXES = ("CREATE INDEX IF NOT EXISTS pending_items_by_assignee "
                  "ON pending_items (assigned_to, state)",)
_ITEM_COLUMNS = ("id, request_hash, agent, tenant, action, tags, params, rule_ids, reason, "
                 "rollback, tier, route, approvals_needed, snapshot_id, request, body, state, "
                 "created_at, expires_at, decided_at, outcome_reason, decided_snapshot_id, "
                 "escalation_level, earlier_routes, escalate_at, expiry_notice_at, "
                 "assigned_to, assigned_at, second_review")
_VOTE_COLUMNS = "item_id, reviewer, verdict, reason, at, opened_at"

Row = tuple[Any, ...]  # as sqlite3 returns it


def _json(value: object, what: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as e:
        raise StoreError(f"pending store: {what} are not JSON: {e}") from e


def _item_row(item: PendingItem) -> Row:
    return (item.id, item.request_hash, item.agent, item.tenant, item.action,
            _json(list(item.tags), "tags"), _json(item.params, "params"),
            _json(list(item.rule_ids), "rule ids"), item.reason, item.rollback, item.tier,
            item.route, item.approvals_needed, item.snapshot_id,
            _json(item.request.to_json(with_body=False), "request"), item.request.body,
            item.state.value, item.created_at, item.expires_at, item.decided_at,
            item.outcome_reason, item.decided_snapshot_id, item.escalation_level,
            _json(list(item.earlier_routes), "earlier routes"), item.escalate_at,
            item.expiry_notice_at, item.assigned_to, item.assigned_at, int(item.second_review))


def _item(row: Row, votes: tuple[Vote, ...]) -> PendingItem:
    (item_id, request_hash, agent, tenant, action, tags, params, rule_ids, reason, rollback,
     tier, route, approvals_needed, snapshot_id, request, body, state, created_at, expires_at,
     decided_at, outcome_reason, decided_snapshot_id, escalation_level, earlier_routes,
     escalate_at, expiry_notice_at, assigned_to, assigned_at, second_review) = row
    try:
        return PendingItem(
            id=item_id, request_hash=request_hash, agent=agent, tenant=tenant, action=action,
            tags=tuple(orjson.loads(tags)), params=orjson.loads(params),
            rule_ids=tuple(orjson.loads(rule_ids)), reason=reason, rollback=rollback,
            tier=tier, route=route, approvals_needed=approvals_needed, snapshot_id=snapshot_id,
            request=HeldRequest.from_json(orjson.loads(request), body=body),
            state=State(state), created_at=created_at, expires_at=expires_at,
            decided_at=decided_at, outcome_reason=outcome_reason,
            decided_snapshot_id=decided_snapshot_id, votes=votes,
            escalation_level=escalation_level, earlier_routes=tuple(orjson.loads(earlier_routes)),
            escalate_at=escalate_at, expiry_notice_at=expiry_notice_at,
            assigned_to=assigned_to, assigned_at=assigned_at, second_review=bool(second_review))
    except ValueError as e:  # orjson's decode errors are ValueErrors too
        raise StoreError(f"pending store: item `{item_id}` is unreadable: {e}") from e


def _vote(row: Row) -> Vote:
    _, reviewer, verdict, reason, at, opened_at = row
    return Vote(reviewer=reviewer, verdict=verdict, reason=reason, at=at, opened_at=opened_at)


class SQLitePendingStore(PendingStore):
    """Its own tables and connection in the state database (shared with gateway.store)."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = open_database(path)
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            _add_missing_columns(self._db)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the pending store `{path}`: {e}") from e
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: reads see one snapshot; BEGIN IMMEDIATE takes the
        write lock first, so a check and the write that depends on it cannot be interleaved
        (not by another thread, nor by another process on the same file)."""
        with self._lock:
            try:
                self._db.execute(begin)
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                with suppress(sqlite3.Error):  # a closed connection has nothing to undo
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise StoreError(f"pending store: {e}") from e

    def add(self, item: PendingItem) -> None:
        if item.votes:
            raise ValueError("a new item has no votes yet: they are recorded through vote()")
        row = _item_row(item)
        with self._transaction("BEGIN IMMEDIATE") as db:
            if db.execute("SELECT 1 FROM pending_items WHERE id = ?", (item.id,)).fetchone():
                raise StoreError(f"pending store: an item `{item.id}` already exists")
            db.execute(f"INSERT INTO pending_items ({_ITEM_COLUMNS}) "
                       f"VALUES ({', '.join('?' * len(row))})", row)

    def get(self, item_id: str) -> PendingItem | None:
        with self._transaction() as db:
            return _find(db, item_id)

    def find_reusable(self, agent: str, request_hash: str) -> PendingItem | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, state FROM pending_items WHERE agent = ? AND request_hash = ? "
                "ORDER BY created_at DESC, rowid DESC LIMIT 1", (agent, request_hash)).fetchone()
            return _load(db, row[0]) if row and row[1] != State.CONSUMED.value else None

    def list(self, *, states: Collection[State] | None = None, route: str | None = None,
             agent: str | None = None, action: str | None = None,
             assigned_to: str | None = None, limit: int = 100) -> list[PendingItem]:
        where: list[str] = ["1"]
        args: list[object] = []
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(State(s).value for s in states)
        for column, value in (("route", route), ("agent", agent), ("action", action),
                              ("assigned_to", assigned_to)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        with self._transaction() as db:
            rows = db.execute(f"SELECT {_ITEM_COLUMNS} FROM pending_items "
                              f"WHERE {' AND '.join(where)} ORDER BY created_at, rowid LIMIT ?",
                              (*args, limit)).fetchall()
            votes: dict[str, list[Vote]] = {}
            for vote_row in db.execute(
                    f"SELECT {_VOTE_COLUMNS} FROM pending_votes WHERE item_id IN "
                    "(SELECT value FROM json_each(?)) ORDER BY rowid",
                    (orjson.dumps([row[0] for row in rows]).decode(),)):
                votes.setdefault(vote_row[0], []).append(_vote(vote_row))
        return [_item(row, tuple(votes.get(row[0], ()))) for row in rows]

    def assign(self, item_id: str, members: Collection[str], cap: int | None) -> PendingItem:
        with self._transaction("BEGIN IMMEDIATE") as db:
            if _state(db, item_id) is not State.PENDING:
                return _load(db, item_id)
            loads = {name: Load(open=count, last_assigned=last) for name, count, last in db.execute(
                "SELECT assigned_to, sum(state = ? AND id != ?), max(assigned_at) "
                "FROM pending_items WHERE assigned_to IN (SELECT value FROM json_each(?)) "
                "GROUP BY assigned_to",
                (State.PENDING.value, item_id, _json(list(members), "members")))}
            chosen = choose(members, loads, cap)
            db.execute("UPDATE pending_items SET assigned_to = ?, assigned_at = ? WHERE id = ?",
                       (chosen, utc_now_iso() if chosen else None, item_id))
            return _load(db, item_id)

    def opened(self, item_id: str, reviewer: str) -> str:
        with self._transaction("BEGIN IMMEDIATE") as db:
            _state(db, item_id)
            (first,) = db.execute(  # the no-op update returns the row already there
                "INSERT INTO pending_opens (item_id, reviewer, opened_at) VALUES (?, ?, ?) "
                "ON CONFLICT (item_id, reviewer) DO UPDATE SET opened_at = opened_at "
                "RETURNING opened_at", (item_id, reviewer, utc_now_iso())).fetchone()
            return first

    def first_opened(self, item_id: str, reviewer: str) -> str | None:
        with self._transaction() as db:
            row = db.execute("SELECT opened_at FROM pending_opens "
                             "WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)).fetchone()
            return row[0] if row else None

    def vote(self, item_id: str, vote: Vote, *, approvals_needed: int,
             snapshot_id: str | None = None, second_review: bool = False) -> PendingItem:
        if vote.verdict not in ("approve", "deny"):
            raise ValueError(f"unknown verdict `{vote.verdict}`; approve or deny")
        with self._transaction("BEGIN IMMEDIATE") as db:
            state = _state(db, item_id)
            if state is not State.PENDING:
                raise PendingConflict(state, f"`{item_id}` is {state.value}; a decided item "
                                             "stays decided")
            if db.execute("SELECT 1 FROM pending_votes WHERE item_id = ? AND reviewer = ?",
                          (item_id, vote.reviewer)).fetchone():
                raise PendingConflict(state, f"`{vote.reviewer}` has already voted on "
                                             f"`{item_id}`; one vote per reviewer")
            db.execute(f"INSERT INTO pending_votes ({_VOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                       (item_id, vote.reviewer, vote.verdict, vote.reason, vote.at,
                        vote.opened_at))
            (approvals,) = db.execute("SELECT count(*) FROM pending_votes WHERE item_id = ? "
                                      "AND verdict = 'approve'", (item_id,)).fetchone()
            outcome = (State.DENIED if vote.verdict == "deny" else
                       State.APPROVED if approvals >= approvals_needed else None)
            if outcome is State.APPROVED and second_review and not db.execute(
                    "SELECT second_review FROM pending_items WHERE id = ?",
                    (item_id,)).fetchone()[0]:
                db.execute("UPDATE pending_items SET second_review = 1, approvals_needed = ? "
                           "WHERE id = ?", (approvals + 1, item_id))
                outcome = None
            if outcome is not None:
                db.execute("UPDATE pending_items SET state = ?, decided_at = ?, "
                           "outcome_reason = ?, decided_snapshot_id = ? WHERE id = ?",
                           (outcome.value, vote.at, vote.reason, snapshot_id, item_id))
            return _load(db, item_id)

    def approval_times(self, reviewer: str, since: str) -> list[str]:
        with self._transaction() as db:
            rows = db.execute("SELECT at FROM pending_votes WHERE reviewer = ? AND at >= ? "
                              "AND verdict = 'approve' ORDER BY at", (reviewer, since)).fetchall()
        return [row[0] for row in rows]

    def votes_since(self, since: str) -> list[Vote]:
        with self._transaction() as db:
            rows = db.execute(f"SELECT {_VOTE_COLUMNS} FROM pending_votes WHERE at >= ? "
                              "ORDER BY at, rowid", (since,)).fetchall()
        return [_vote(row) for row in rows]

    def queue_entries(self, since: str) -> list[QueueEntry]:
        columns = "route, tier, state, created_at, decided_at, assigned_to"
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {columns}, rowid FROM pending_items WHERE state = ? "
                f"UNION SELECT {columns}, rowid FROM pending_items WHERE decided_at >= ? "
                "ORDER BY created_at, rowid", (State.PENDING.value, since)).fetchall()
        return [QueueEntry(route=route, tier=tier, state=State(state), created_at=created,
                           decided_at=decided, assigned_to=assignee)
                for route, tier, state, created, decided, assignee, _ in rows]

    def open_by_route(self) -> dict[str | None, int]:
        with self._transaction() as db:
            rows = db.execute("SELECT route, count(*) FROM pending_items WHERE state = ? "
                              "GROUP BY route", (State.PENDING.value,)).fetchall()
        return dict(rows)

    def consume(self, item_id: str) -> bool:
        with self._transaction("BEGIN IMMEDIATE") as db:
            return db.execute("UPDATE pending_items SET state = ? WHERE id = ? AND state = ?",
                              (State.CONSUMED.value, item_id, State.APPROVED.value)
                              ).rowcount == 1

    def finish(self, item_id: str, to: State, reason: str, *,
               expected: Collection[State] = (State.PENDING,)) -> PendingItem:
        if to in (State.PENDING, State.CONSUMED):
            raise ValueError(f"an item cannot be finished as {to.value}")
        with self._transaction("BEGIN IMMEDIATE") as db:
            state = _state(db, item_id)
            if state not in expected:
                allowed = ", ".join(sorted(State(s).value for s in expected))
                raise PendingConflict(state, f"`{item_id}` is {state.value}, not {allowed}; "
                                             f"it was not made {to.value}")
            db.execute("UPDATE pending_items SET state = ?, decided_at = ?, outcome_reason = ? "
                       "WHERE id = ?", (to.value, utc_now_iso(), reason, item_id))
            return _load(db, item_id)

    def due(self, now_iso: str) -> list[str]:
        return self._pending_due("expires_at", now_iso)

    def escalate(self, item_id: str, route: str, *, from_level: int, escalate_at: str | None,
                 expires_at: str | None = None,
                 expiry_notice_at: str | None = None) -> PendingItem:
        with self._transaction("BEGIN IMMEDIATE") as db:
            state = _state(db, item_id)
            (level, earlier, current) = db.execute(
                "SELECT escalation_level, earlier_routes, route FROM pending_items WHERE id = ?",
                (item_id,)).fetchone()
            if state is not State.PENDING or level != from_level:
                raise PendingConflict(state, f"`{item_id}` is {state.value} at escalation level "
                                             f"{level}, not pending at {from_level}; it was not "
                                             "escalated")
            db.execute("UPDATE pending_items SET route = ?, escalation_level = ?, "
                       "earlier_routes = ?, escalate_at = ?, "
                       "expires_at = coalesce(?, expires_at), "
                       "expiry_notice_at = CASE WHEN ? IS NULL THEN expiry_notice_at ELSE ? END "
                       "WHERE id = ?",
                       (route, level + 1, _json([*orjson.loads(earlier), current], "routes"),
                        escalate_at, expires_at, expires_at, expiry_notice_at, item_id))
            return _load(db, item_id)

    def stop_escalating(self, item_id: str) -> None:
        with self._transaction("BEGIN IMMEDIATE") as db:
            _state(db, item_id)
            db.execute("UPDATE pending_items SET escalate_at = NULL WHERE id = ?", (item_id,))

    def escalations_due(self, now_iso: str) -> list[str]:
        return self._pending_due("escalate_at", now_iso)

    def expiry_notices_due(self, now_iso: str) -> list[str]:
        return self._pending_due("expiry_notice_at", now_iso)

    def take_expiry_notice(self, item_id: str) -> PendingItem | None:
        with self._transaction("BEGIN IMMEDIATE") as db:
            taken = db.execute("UPDATE pending_items SET expiry_notice_at = NULL WHERE id = ? "
                               "AND state = ? AND expiry_notice_at IS NOT NULL",
                               (item_id, State.PENDING.value)).rowcount == 1
            return _load(db, item_id) if taken else None

    def _pending_due(self, column: str, now_iso: str) -> list[str]:
        """PENDING items whose time in `column` (a fixed column name, never input) has come."""
        with self._transaction() as db:
            rows = db.execute(f"SELECT id FROM pending_items WHERE state = ? AND {column} <= ? "
                              f"ORDER BY {column}, rowid", (State.PENDING.value, now_iso)
                              ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A state database written before a column existed gets it, with its default; inside
    one write transaction, so two processes opening the file at once add it once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        have = {row[1] for row in db.execute("PRAGMA table_info(pending_items)")}
        for name, declaration in _ADDED_COLUMNS:
            if name not in have:
                db.execute(f"ALTER TABLE pending_items ADD COLUMN {name} {declaration}")
        for index in _ADDED_INDEXES:
            db.execute(index)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _find(db: sqlite3.Connection, item_id: str) -> PendingItem | None:
    row = db.execute(f"SELECT {_ITEM_COLUMNS} FROM pending_items WHERE id = ?",
                     (item_id,)).fetchone()
    if row is None:
        return None
    votes = db.execute(f"SELECT {_VOTE_COLUMNS} FROM pending_votes WHERE item_id = ? "
                       "ORDER BY rowid", (item_id,)).fetchall()
    return _item(row, tuple(_vote(vote) for vote in votes))


def _load(db: sqlite3.Connection, item_id: str) -> PendingItem:
    item = _find(db, item_id)
    if item is None:
        raise KeyError(f"no pending item `{item_id}`")
    return item


def _state(db: sqlite3.Connection, item_id: str) -> State:
    row = db.execute("SELECT state FROM pending_items WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise KeyError(f"no pending item `{item_id}`")
    return State(row[0])

