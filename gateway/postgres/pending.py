"""Held calls and their votes on PostgreSQL: `gateway.approvals.store.PendingStore`.

Every check-then-write runs in one transaction that first locks the item's row (SELECT ...
FOR UPDATE), so two reviewers, the expiry sweep and a replica forwarding the approved call
take turns on an item, on one replica or several; a change that needs no check is a
conditional UPDATE, which PostgreSQL re-evaluates after a concurrent one commits. Assignment
looks at other items' rows, so it takes a transaction-level advisory lock instead.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson

from gateway.approvals.assign import Load, choose
from gateway.approvals.model import PendingItem, QueueEntry, State, Vote
from gateway.approvals.store import (
    _ITEM_COLUMNS,
    _VOTE_COLUMNS,
    PendingConflict,
    PendingStore,
    _item,
    _item_row,
    _json,
    _vote,
)
from gateway.clock import utc_now_iso
from gateway.postgres.database import Connection, Database, Row
from gateway.postgres.notify import PENDING, announce
from gateway.store import StoreError

# pg_advisory_xact_lock key of reviewer assignment: "assign" in ASCII
ASSIGN_LOCK_KEY = 0x61737369676E


class PostgresPendingStore(PendingStore):
    def __init__(self, url: str) -> None:
        self._db = Database(url, "pending store")

    def add(self, item: PendingItem) -> None:
        if item.votes:
            raise ValueError("a new item has no votes yet: they are recorded through vote()")
        row = _item_row(item)
        if not self._db.change(f"INSERT INTO pending_items ({_ITEM_COLUMNS}) "
                               f"VALUES ({', '.join(['%s'] * len(row))}) "
                               "ON CONFLICT (id) DO NOTHING", row):
            raise StoreError(f"pending store: an item `{item.id}` already exists")

    def get(self, item_id: str) -> PendingItem | None:
        with self._db.transaction() as db:
            return _find(db, item_id)

    def find_reusable(self, agent: str, request_hash: str) -> PendingItem | None:
        with self._db.transaction() as db:
            row = db.execute(
                "SELECT id, state FROM pending_items WHERE agent = %s AND request_hash = %s "
                "ORDER BY created_at DESC, seq DESC LIMIT 1", (agent, request_hash)).fetchone()
            return _load(db, row[0]) if row and row[1] != State.CONSUMED.value else None

    def list(self, *, states: Collection[State] | None = None, route: str | None = None,
             agent: str | None = None, action: str | None = None,
             assigned_to: str | None = None, limit: int = 100) -> list[PendingItem]:
        where: list[str] = ["true"]
        args: list[object] = []
        if states is not None:
            where.append("state = ANY(%s)")
            args.append([State(s).value for s in states])
        for column, value in (("route", route), ("agent", agent), ("action", action),
                              ("assigned_to", assigned_to)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        with self._db.transaction() as db:
            rows = db.execute(f"SELECT {_ITEM_COLUMNS} FROM pending_items "
                              f"WHERE {' AND '.join(where)} ORDER BY created_at, seq LIMIT %s",
                              (*args, limit)).fetchall()
            votes: dict[str, list[Vote]] = {}
            for vote_row in db.execute(f"SELECT {_VOTE_COLUMNS} FROM pending_votes "
                                       "WHERE item_id = ANY(%s) ORDER BY seq",
                                       ([row[0] for row in rows],)):
                votes.setdefault(vote_row[0], []).append(_vote(vote_row))
        return [_item(row, tuple(votes.get(row[0], ()))) for row in rows]

    def assign(self, item_id: str, members: Collection[str], cap: int | None) -> PendingItem:
        with self._db.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (ASSIGN_LOCK_KEY,))
            if _lock(db, item_id) is not State.PENDING:
                return _load(db, item_id)
            loads = {name: Load(open=count, last_assigned=last) for name, count, last in db.execute(
                "SELECT assigned_to, count(*) FILTER (WHERE state = %s AND id <> %s), "
                "max(assigned_at) FROM pending_items WHERE assigned_to = ANY(%s) "
                "GROUP BY assigned_to", (State.PENDING.value, item_id, list(members)))}
            chosen = choose(members, loads, cap)
            db.execute("UPDATE pending_items SET assigned_to = %s, assigned_at = %s "
                       "WHERE id = %s", (chosen, utc_now_iso() if chosen else None, item_id))
            return _load(db, item_id)

    def opened(self, item_id: str, reviewer: str) -> str:
        with self._db.transaction() as db:
            _lock(db, item_id)
            row = db.execute(  # the no-op update returns the row already there
                "INSERT INTO pending_opens (item_id, reviewer, opened_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (item_id, reviewer) DO UPDATE "
                "SET opened_at = pending_opens.opened_at RETURNING opened_at",
                (item_id, reviewer, utc_now_iso())).fetchone()
            assert row is not None  # an upsert with RETURNING always returns its row
            return str(row[0])

    def first_opened(self, item_id: str, reviewer: str) -> str | None:
        rows = self._db.rows("SELECT opened_at FROM pending_opens "
                             "WHERE item_id = %s AND reviewer = %s", (item_id, reviewer))
        return rows[0][0] if rows else None

    def vote(self, item_id: str, vote: Vote, *, approvals_needed: int,
             snapshot_id: str | None = None, second_review: bool = False) -> PendingItem:
        if vote.verdict not in ("approve", "deny"):
            raise ValueError(f"unknown verdict `{vote.verdict}`; approve or deny")
        with self._db.transaction() as db:
            state = _lock(db, item_id)
            if state is not State.PENDING:
                raise PendingConflict(state, f"`{item_id}` is {state.value}; a decided item "
                                             "stays decided")
            if db.execute("SELECT 1 FROM pending_votes WHERE item_id = %s AND reviewer = %s",
                          (item_id, vote.reviewer)).fetchone():
                raise PendingConflict(state, f"`{vote.reviewer}` has already voted on "
                                             f"`{item_id}`; one vote per reviewer")
            db.execute(f"INSERT INTO pending_votes ({_VOTE_COLUMNS}) "
                       "VALUES (%s, %s, %s, %s, %s, %s)",
                       (item_id, vote.reviewer, vote.verdict, vote.reason, vote.at,
                        vote.opened_at))
            approvals, reviewed = _one(db, "SELECT (SELECT count(*) FROM pending_votes "
                                           "WHERE item_id = %s AND verdict = 'approve'), "
                                           "second_review FROM pending_items WHERE id = %s",
                                       (item_id, item_id))
            outcome = (State.DENIED if vote.verdict == "deny" else
                       State.APPROVED if approvals >= approvals_needed else None)
            if outcome is State.APPROVED and second_review and not reviewed:
                db.execute("UPDATE pending_items SET second_review = 1, approvals_needed = %s "
                           "WHERE id = %s", (approvals + 1, item_id))
                outcome = None
            if outcome is not None:
                db.execute("UPDATE pending_items SET state = %s, decided_at = %s, "
                           "outcome_reason = %s, decided_snapshot_id = %s WHERE id = %s",
                           (outcome.value, vote.at, vote.reason, snapshot_id, item_id))
                announce(db, PENDING, item_id)  # the replica holding the call wakes it
            return _load(db, item_id)

    def approval_times(self, reviewer: str, since: str) -> list[str]:
        rows = self._db.rows("SELECT at FROM pending_votes WHERE reviewer = %s AND at >= %s "
                             "AND verdict = 'approve' ORDER BY at, seq", (reviewer, since))
        return [row[0] for row in rows]

    def votes_since(self, since: str) -> list[Vote]:
        rows = self._db.rows(f"SELECT {_VOTE_COLUMNS} FROM pending_votes WHERE at >= %s "
                             "ORDER BY at, seq", (since,))
        return [_vote(row) for row in rows]

    def queue_entries(self, since: str) -> list[QueueEntry]:
        rows = self._db.rows(
            "SELECT route, tier, state, created_at, decided_at, assigned_to FROM pending_items "
            "WHERE state = %s OR decided_at >= %s ORDER BY created_at, seq",
            (State.PENDING.value, since))
        return [QueueEntry(route=route, tier=tier, state=State(state), created_at=created,
                           decided_at=decided, assigned_to=assignee)
                for route, tier, state, created, decided, assignee in rows]

    def open_by_route(self) -> dict[str | None, int]:
        rows = self._db.rows("SELECT route, count(*) FROM pending_items WHERE state = %s "
                             "GROUP BY route", (State.PENDING.value,))
        return {route: count for route, count in rows}

    def consume(self, item_id: str) -> bool:
        return self._db.change("UPDATE pending_items SET state = %s WHERE id = %s "
                               "AND state = %s",
                               (State.CONSUMED.value, item_id, State.APPROVED.value)) == 1

    def finish(self, item_id: str, to: State, reason: str, *,
               expected: Collection[State] = (State.PENDING,)) -> PendingItem:
        if to in (State.PENDING, State.CONSUMED):
            raise ValueError(f"an item cannot be finished as {to.value}")
        with self._db.transaction() as db:
            state = _lock(db, item_id)
            if state not in expected:
                allowed = ", ".join(sorted(State(s).value for s in expected))
                raise PendingConflict(state, f"`{item_id}` is {state.value}, not {allowed}; "
                                             f"it was not made {to.value}")
            db.execute("UPDATE pending_items SET state = %s, decided_at = %s, "
                       "outcome_reason = %s WHERE id = %s",
                       (to.value, utc_now_iso(), reason, item_id))
            announce(db, PENDING, item_id)
            return _load(db, item_id)

    def due(self, now_iso: str) -> list[str]:
        return self._pending_due("expires_at", now_iso)

    def escalate(self, item_id: str, route: str, *, from_level: int, escalate_at: str | None,
                 expires_at: str | None = None,
                 expiry_notice_at: str | None = None) -> PendingItem:
        with self._db.transaction() as db:
            state = _lock(db, item_id)
            level, earlier, current = _one(db, "SELECT escalation_level, earlier_routes, route "
                                               "FROM pending_items WHERE id = %s", (item_id,))
            if state is not State.PENDING or level != from_level:
                raise PendingConflict(state, f"`{item_id}` is {state.value} at escalation level "
                                             f"{level}, not pending at {from_level}; it was not "
                                             "escalated")
            db.execute("UPDATE pending_items SET route = %s, escalation_level = %s, "
                       "earlier_routes = %s, escalate_at = %s, "
                       "expires_at = coalesce(%s, expires_at), expiry_notice_at = "
                       "CASE WHEN %s::text IS NULL THEN expiry_notice_at ELSE %s END "
                       "WHERE id = %s",
                       (route, level + 1, _json([*orjson.loads(earlier), current], "routes"),
                        escalate_at, expires_at, expires_at, expiry_notice_at, item_id))
            return _load(db, item_id)

    def stop_escalating(self, item_id: str) -> None:
        with self._db.transaction() as db:
            _lock(db, item_id)
            db.execute("UPDATE pending_items SET escalate_at = NULL WHERE id = %s", (item_id,))

    def escalations_due(self, now_iso: str) -> list[str]:
        return self._pending_due("escalate_at", now_iso)

    def expiry_notices_due(self, now_iso: str) -> list[str]:
        return self._pending_due("expiry_notice_at", now_iso)

    def take_expiry_notice(self, item_id: str) -> PendingItem | None:
        with self._db.transaction() as db:
            taken = db.execute("UPDATE pending_items SET expiry_notice_at = NULL WHERE id = %s "
                               "AND state = %s AND expiry_notice_at IS NOT NULL",
                               (item_id, State.PENDING.value)).rowcount == 1
            return _load(db, item_id) if taken else None

    def _pending_due(self, column: str, now_iso: str) -> list[str]:
        """PENDING items whose time in `column` (a fixed column name, never input) has come."""
        rows = self._db.rows(f"SELECT id FROM pending_items WHERE state = %s "
                             f"AND {column} <= %s ORDER BY {column}, seq",
                             (State.PENDING.value, now_iso))
        return [row[0] for row in rows]

    def close(self) -> None:
        self._db.close()


def _one(db: Connection, sql: str, args: tuple[object, ...]) -> Row:
    row = db.execute(sql, args).fetchone()
    assert row is not None, sql  # only asked of an item already locked
    return row


def _find(db: Connection, item_id: str) -> PendingItem | None:
    row = db.execute(f"SELECT {_ITEM_COLUMNS} FROM pending_items WHERE id = %s",
                     (item_id,)).fetchone()
    if row is None:
        return None
    votes = db.execute(f"SELECT {_VOTE_COLUMNS} FROM pending_votes WHERE item_id = %s "
                       "ORDER BY seq", (item_id,)).fetchall()
    return _item(row, tuple(_vote(vote) for vote in votes))


def _load(db: Connection, item_id: str) -> PendingItem:
    item = _find(db, item_id)
    if item is None:
        raise KeyError(f"no pending item `{item_id}`")
    return item


def _lock(db: Connection, item_id: str) -> State:
    """The item's state, its row locked until the transaction ends."""
    row = db.execute("SELECT state FROM pending_items WHERE id = %s FOR UPDATE",
                     (item_id,)).fetchone()
    if row is None:
        raise KeyError(f"no pending item `{item_id}`")
    return State(row[0])
