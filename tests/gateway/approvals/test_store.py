"""The pending store, on SQLite and on PostgreSQL: held calls and their votes survive restarts,
and every state change is a compare-and-set, so racing reviewers, expiry and forwarding yield
exactly one outcome."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.approvals.model import HeldRequest, PendingItem, State, Vote, new_pending_id
from gateway.approvals.store import PendingConflict, PendingStore, SQLitePendingStore
from gateway.clock import iso
from gateway.postgres.pending import PostgresPendingStore
from gateway.postgres.state import PostgresStateStore
from gateway.store import SQLiteStore, StoreError
from tests.gateway.postgres.places import Place, store_fixtures

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BODY = bytes(range(256)) + b"\x00\xff gzip-ish"


def at(minutes: float) -> str:
    return iso(T0 + timedelta(minutes=minutes))


def item(**changes: object) -> PendingItem:
    """A pending external email; `minute` sets when it was created (it expires an hour on)."""
    minute = float(changes.pop("minute", 0))  # type: ignore[arg-type]
    base = PendingItem(
        id=new_pending_id(), request_hash="ab" * 32, agent="support-bot", tenant="acme",
        action="email.send", tags=("external", "pii"),
        params={"to": ["zoë@example.com"], "subject": "Grüße, 你好", "count": 3, "dry": None},
        rule_ids=("mail-out", "pii"), reason="external mail needs a reviewer",
        rollback="recall the message", tier=2, route="support-leads", approvals_needed=1,
        snapshot_id="1.0:aaaaaaaaaaaa",
        request=HeldRequest(method="POST", scheme="https", host="mail.example", port=443,
                            path="/v1/send", query=(("dry", "0"),),
                            headers=(("Content-Type", "application/json"),
                                     ("Content-Encoding", "gzip")), body=BODY),
        state=State.PENDING, created_at=at(minute), expires_at=at(minute + 60))
    return replace(base, **changes)


def approve(reviewer: str, reason: str = "checked the recipient") -> Vote:
    return Vote(reviewer, "approve", reason, at(5), opened_at=at(1))


def deny(reviewer: str, reason: str = "wrong customer") -> Vote:
    return Vote(reviewer, "deny", reason, at(5), opened_at=at(1))


where, store = store_fixtures(SQLitePendingStore, PostgresPendingStore)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """For what only SQLite has: a file that can be spoiled, tables from older releases."""
    return tmp_path / "state" / "state.db"


def added(store: PendingStore, **changes: object) -> PendingItem:
    new = item(**changes)
    store.add(new)
    return new


# --- keeping items -------------------------------------------------------------------------

def test_an_item_comes_back_exactly_with_its_binary_body_and_non_ascii_params(
        store: PendingStore) -> None:
    kept = added(store)
    assert store.get(kept.id) == kept
    assert store.get("p_000000000000") is None


def test_items_and_their_votes_survive_a_restart(where: Place[PendingStore]) -> None:
    first = where.open()
    kept = added(first, approvals_needed=2)
    first.opened(kept.id, "ann")
    first.vote(kept.id, approve("ann"), approvals_needed=2)
    first.close()

    second = where.open()
    found = second.get(kept.id)
    assert found == replace(kept, votes=(approve("ann"),))
    assert second.first_opened(kept.id, "ann") is not None
    assert second.find_reusable("support-bot", kept.request_hash) == found
    approved = second.vote(kept.id, approve("bo"), approvals_needed=2)
    assert approved.state is State.APPROVED
    second.close()


def test_it_shares_the_state_database_with_the_state_store(where: Place[PendingStore]) -> None:
    state = where.beside(SQLiteStore, PostgresStateStore)
    pending = where.open()
    kept = added(pending)
    state.record_snapshot("1.0:aaaaaaaaaaaa", "1.0", "p.yaml", "version: 1")
    assert pending.get(kept.id) == kept
    assert [s["snapshot_id"] for s in state.snapshots()] == ["1.0:aaaaaaaaaaaa"]
    pending.close()
    state.close()


def test_an_id_is_added_once(store: PendingStore) -> None:
    kept = added(store)
    with pytest.raises(StoreError, match=f"`{kept.id}` already exists"):
        store.add(replace(kept, agent="other-bot"))
    assert store.get(kept.id) == kept


def test_a_new_item_has_no_votes(store: PendingStore) -> None:
    with pytest.raises(ValueError, match="no votes yet"):
        store.add(item(votes=(approve("ann"),)))


def test_params_that_are_not_json_are_refused_clearly(store: PendingStore) -> None:
    with pytest.raises(StoreError, match="params are not JSON"):
        store.add(item(params={"when": datetime}))


def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the pending store"):
        SQLitePendingStore(tmp_path / "state.db")


def test_a_closed_store_raises_a_store_error(where: Place[PendingStore]) -> None:
    closed = where.open()
    closed.close()
    with pytest.raises(StoreError, match="pending store"):
        closed.get("p_000000000000")


# --- retries attach to an open item ----------------------------------------------------------

@pytest.mark.parametrize("state, reused", [
    (State.PENDING, True),  # it waits on
    (State.APPROVED, True),  # it passes
    (State.CONSUMED, False),  # the approval was used: a new item
    (State.DENIED, True),  # it stays refused
    (State.EXPIRED, True),
    (State.CANCELLED, True),
])
def test_a_retry_attaches_to_its_item_unless_that_approval_was_used(
        store: PendingStore, state: State, reused: bool) -> None:
    kept = added(store, state=state)
    found = store.find_reusable("support-bot", kept.request_hash)
    assert (found == kept) if reused else (found is None)


def test_a_retry_never_attaches_across_agents_or_requests(store: PendingStore) -> None:
    kept = added(store)
    assert store.find_reusable("other-bot", kept.request_hash) is None
    assert store.find_reusable("support-bot", "cd" * 32) is None


def test_a_retry_attaches_to_the_newest_item(store: PendingStore) -> None:
    added(store, minute=0, state=State.CONSUMED)
    added(store, minute=1)
    newest = added(store, minute=3, state=State.DENIED)
    added(store, minute=2)
    assert store.find_reusable("support-bot", "ab" * 32) == newest


# --- votes -----------------------------------------------------------------------------------

def test_two_approvals_need_two_distinct_reviewers(store: PendingStore) -> None:
    kept = added(store, approvals_needed=2)
    after_one = store.vote(kept.id, approve("ann"), approvals_needed=2)
    assert (after_one.state, after_one.approvals, after_one.decided_at) == (State.PENDING, 1,
                                                                            None)
    with pytest.raises(PendingConflict, match="`ann` has already voted") as conflict:
        store.vote(kept.id, approve("ann"), approvals_needed=2)
    assert conflict.value.state is State.PENDING

    after_two = store.vote(kept.id, approve("bo", "second look"), approvals_needed=2,
                           snapshot_id="1.1:bbbbbbbbbbbb")
    assert after_two.state is State.APPROVED
    assert [v.reviewer for v in after_two.votes] == ["ann", "bo"]
    assert (after_two.decided_at, after_two.outcome_reason, after_two.decided_snapshot_id) == (
        at(5), "second look", "1.1:bbbbbbbbbbbb")


@pytest.mark.parametrize("second", [approve("ann"), deny("ann")], ids=["approve", "deny"])
def test_a_reviewer_votes_once(store: PendingStore, second: Vote) -> None:
    kept = added(store, approvals_needed=2)
    store.vote(kept.id, approve("ann"), approvals_needed=2)
    with pytest.raises(PendingConflict, match="one vote per reviewer"):
        store.vote(kept.id, second, approvals_needed=2)
    assert store.get(kept.id) == replace(kept, votes=(approve("ann"),))


def test_a_deny_after_an_approval_is_final(store: PendingStore) -> None:
    kept = added(store, approvals_needed=2)
    store.vote(kept.id, approve("ann"), approvals_needed=2)
    denied = store.vote(kept.id, deny("bo", "not this customer"), approvals_needed=2)
    assert (denied.state, denied.outcome_reason) == (State.DENIED, "not this customer")
    with pytest.raises(PendingConflict, match="is denied") as conflict:
        store.vote(kept.id, approve("cy"), approvals_needed=2)
    assert conflict.value.state is State.DENIED


@pytest.mark.parametrize("state", [State.APPROVED, State.CONSUMED, State.DENIED, State.EXPIRED,
                                   State.CANCELLED])
def test_votes_on_a_decided_item_conflict(store: PendingStore, state: State) -> None:
    kept = added(store, state=state)
    for vote in (approve("ann"), deny("ann")):
        with pytest.raises(PendingConflict) as conflict:
            store.vote(kept.id, vote, approvals_needed=1)
        assert conflict.value.state is state
    assert store.get(kept.id) == kept


def test_a_verdict_is_approve_or_deny(store: PendingStore) -> None:
    kept = added(store)
    with pytest.raises(ValueError, match="unknown verdict `maybe`"):
        store.vote(kept.id, Vote("ann", "maybe", "", at(5), None), approvals_needed=1)


def test_an_unknown_item_is_a_key_error_for_votes_opens_and_finishing(
        store: PendingStore) -> None:
    with pytest.raises(KeyError, match="p_000000000000"):
        store.vote("p_000000000000", approve("ann"), approvals_needed=1)
    with pytest.raises(KeyError):
        store.opened("p_000000000000", "ann")
    with pytest.raises(KeyError):
        store.finish("p_000000000000", State.EXPIRED, "timed out")
    assert store.consume("p_000000000000") is False


# --- review time -------------------------------------------------------------------------------

def test_the_first_opening_is_kept(store: PendingStore) -> None:
    kept = added(store)
    assert store.first_opened(kept.id, "ann") is None
    first = store.opened(kept.id, "ann")
    assert store.opened(kept.id, "ann") == first
    assert store.first_opened(kept.id, "ann") == first
    assert store.first_opened(kept.id, "bo") is None
    assert store.opened(kept.id, "bo") >= first


# --- forwarding, expiry, cancellation ------------------------------------------------------------

def test_an_approved_item_is_consumed_once(store: PendingStore) -> None:
    kept = added(store)
    assert store.consume(kept.id) is False  # still pending
    store.vote(kept.id, approve("ann"), approvals_needed=1)
    assert store.consume(kept.id) is True
    assert store.consume(kept.id) is False
    consumed = store.get(kept.id)
    assert consumed is not None and consumed.state is State.CONSUMED
    assert store.find_reusable("support-bot", kept.request_hash) is None


@pytest.mark.parametrize("expected, to", [
    ((State.PENDING,), State.EXPIRED),
    ((State.PENDING,), State.CANCELLED),
    ((State.PENDING, State.APPROVED), State.DENIED),
])
def test_finish_moves_an_item_only_from_an_expected_state(
        store: PendingStore, expected: tuple[State, ...], to: State) -> None:
    kept = added(store)
    done = store.finish(kept.id, to, "no reviewer in time", expected=expected)
    assert (done.state, done.outcome_reason) == (to, "no reviewer in time")
    assert done.decided_at is not None
    with pytest.raises(PendingConflict, match=f"is {to.value}") as conflict:
        store.finish(kept.id, State.CANCELLED, "again", expected=expected)
    assert conflict.value.state is to
    assert store.get(kept.id) == done


def test_a_changed_policy_may_deny_an_approved_item_before_it_is_forwarded(
        store: PendingStore) -> None:
    kept = added(store)
    store.vote(kept.id, approve("ann"), approvals_needed=1)
    with pytest.raises(PendingConflict, match="is approved, not pending"):
        store.finish(kept.id, State.DENIED, "now denied by rule x")
    denied = store.finish(kept.id, State.DENIED, "now denied by rule x",
                          expected=(State.PENDING, State.APPROVED))
    assert denied.state is State.DENIED and denied.votes == (approve("ann"),)
    assert store.consume(kept.id) is False


@pytest.mark.parametrize("to", [State.PENDING, State.CONSUMED])
def test_finish_neither_reopens_nor_consumes(store: PendingStore, to: State) -> None:
    kept = added(store)
    with pytest.raises(ValueError, match=f"cannot be finished as {to.value}"):
        store.finish(kept.id, to, "no")


def test_due_lists_pending_items_whose_time_is_up_soonest_first(
        store: PendingStore) -> None:
    later = added(store, minute=10)  # expires at 70
    sooner = added(store, minute=0)  # expires at 60
    added(store, minute=20)  # expires at 80: not yet
    added(store, minute=-5, state=State.APPROVED)  # decided: never due
    added(store, minute=-5, state=State.EXPIRED)
    assert store.due(at(59)) == []
    assert store.due(at(60)) == [sooner.id]  # at the very moment counts
    assert store.due(at(75)) == [sooner.id, later.id]


# --- escalation and notices ------------------------------------------------------------------

def test_escalating_moves_the_route_and_keeps_the_ones_before(store: PendingStore) -> None:
    kept = added(store, escalate_at=at(20), expiry_notice_at=at(48))
    first = store.escalate(kept.id, "ops", from_level=0, escalate_at=at(40))
    assert (first.route, first.earlier_routes, first.escalation_level) == \
        ("ops", ("support-leads",), 1)
    assert (first.escalate_at, first.expires_at, first.expiry_notice_at) == \
        (at(40), at(60), at(48))  # the deadline stays unless a new one is given
    second = store.escalate(kept.id, "managers", from_level=1, escalate_at=None,
                            expires_at=at(120), expiry_notice_at=at(108))
    assert second == replace(kept, route="managers", earlier_routes=("support-leads", "ops"),
                             escalation_level=2, escalate_at=None, expires_at=at(120),
                             expiry_notice_at=at(108))
    assert store.get(kept.id) == second


def test_an_item_never_routed_keeps_that_among_its_earlier_routes(
        store: PendingStore) -> None:
    kept = added(store, route=None)
    moved = store.escalate(kept.id, "ops", from_level=0, escalate_at=None)
    assert moved.earlier_routes == (None,) and moved.reviewer_groups == (None, "ops")


@pytest.mark.parametrize("state", [State.APPROVED, State.DENIED, State.EXPIRED])
def test_a_decided_item_does_not_escalate(store: PendingStore, state: State) -> None:
    kept = added(store, state=state)
    with pytest.raises(PendingConflict, match="not escalated"):
        store.escalate(kept.id, "ops", from_level=0, escalate_at=None)
    assert store.get(kept.id) == kept


def test_an_item_escalates_once_per_level(stores: list[PendingStore]) -> None:
    kept = added(stores[0])
    results = race(8, lambda i: stores[i].escalate(kept.id, f"group-{i}", from_level=0,
                                                   escalate_at=None))
    [moved] = [r for r in results if isinstance(r, PendingItem)]
    assert sum(isinstance(r, PendingConflict) for r in results) == 7
    assert stores[0].get(kept.id) == moved and moved.escalation_level == 1


def test_escalations_due_lists_pending_items_past_their_time(store: PendingStore) -> None:
    later = added(store, escalate_at=at(30))
    sooner = added(store, escalate_at=at(20))
    added(store)  # never escalates
    added(store, escalate_at=at(10), state=State.DENIED)
    assert store.escalations_due(at(19)) == []
    assert store.escalations_due(at(30)) == [sooner.id, later.id]
    store.stop_escalating(sooner.id)
    assert store.escalations_due(at(30)) == [later.id]
    assert store.get(sooner.id) == replace(sooner, escalate_at=None)


def test_an_expiry_notice_is_taken_once(stores: list[PendingStore]) -> None:
    kept = added(stores[0], expiry_notice_at=at(48))
    added(stores[0], expiry_notice_at=at(10), state=State.APPROVED)
    assert stores[0].expiry_notices_due(at(47)) == []
    assert stores[0].expiry_notices_due(at(48)) == [kept.id]
    results = race(8, lambda i: stores[i].take_expiry_notice(kept.id))
    [taken] = [r for r in results if r is not None]
    assert taken == replace(kept, expiry_notice_at=None)
    assert stores[0].expiry_notices_due(at(60)) == []


def test_a_state_database_from_before_escalation_is_upgraded(path: Path) -> None:
    """The columns escalation added are added to an older table, which keeps its items."""
    first = SQLitePendingStore(path)
    kept = added(first)
    first.close()
    old = sqlite3.connect(path)  # back to the table as it was first released
    for column in ("escalation_level", "earlier_routes", "escalate_at", "expiry_notice_at"):
        old.execute(f"ALTER TABLE pending_items DROP COLUMN {column}")
    old.commit()
    old.close()
    upgraded = SQLitePendingStore(path)
    assert upgraded.get(kept.id) == kept
    moved = upgraded.escalate(kept.id, "ops", from_level=0, escalate_at=at(30))
    upgraded.close()
    again = SQLitePendingStore(path)  # an upgraded table is left as it is
    assert again.get(kept.id) == moved and moved.escalation_level == 1
    again.close()


# --- races ----------------------------------------------------------------------------------

def race(count: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0..count-1) on as many threads released at once; results or exceptions."""
    gate = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        gate.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # noqa: BLE001 - the outcome under test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture(params=["one store", "a store per thread"])
def stores(request: pytest.FixtureRequest,
           where: Place[PendingStore]) -> Iterator[list[PendingStore]]:
    """Eight handles: one shared store, or eight stores on the same file or database (as
    several gateway processes would have)."""
    opened = [where.open()]
    opened += [opened[0]] * 7 if request.param == "one store" else [
        where.open() for _ in range(7)]
    yield opened
    for each in set(opened):
        each.close()


def test_consume_is_exactly_once_under_a_race(stores: list[PendingStore]) -> None:
    for _ in range(5):
        kept = added(stores[0])
        stores[0].vote(kept.id, approve("ann"), approvals_needed=1)
        results = race(8, lambda i, item_id=kept.id: stores[i].consume(item_id))
        assert sorted(results, key=bool) == [False] * 7 + [True]


def test_racing_approvals_and_denials_give_exactly_one_outcome(
        stores: list[PendingStore]) -> None:
    verdicts = [approve, deny] * 4
    for _ in range(5):
        kept = added(stores[0])

        def cast(i: int, item_id: str = kept.id) -> object:
            vote = verdicts[i](f"reviewer-{i}")
            return stores[i].vote(item_id, vote, approvals_needed=1)

        results = race(8, cast)
        winners = [r for r in results if isinstance(r, PendingItem)]
        assert len(winners) == 1
        assert all(isinstance(r, PendingConflict) for r in results if r not in winners)
        final = stores[0].get(kept.id)
        assert final == winners[0] and len(final.votes) == 1
        assert final.state is (State.APPROVED if final.votes[0].verdict == "approve"
                               else State.DENIED)


def test_expiry_racing_a_vote_gives_exactly_one_outcome(
        stores: list[PendingStore]) -> None:
    kept = added(stores[0])

    def act(i: int) -> object:
        if i % 2:
            return stores[i].finish(kept.id, State.EXPIRED, "no reviewer in time")
        return stores[i].vote(kept.id, approve(f"reviewer-{i}"), approvals_needed=1)

    results = race(8, act)
    winners = [r for r in results if isinstance(r, PendingItem)]
    assert len(winners) == 1
    assert sum(isinstance(r, PendingConflict) for r in results) == 7
    assert stores[0].get(kept.id) == winners[0]


def test_racing_assignments_never_pass_a_reviewers_cap(stores: list[PendingStore]) -> None:
    items = [added(stores[0]) for _ in range(8)]
    results = race(8, lambda i: stores[i].assign(items[i].id, ["ann", "bo"], cap=2))
    assignees = [r.assigned_to for r in results if isinstance(r, PendingItem)]
    assert Counter(assignees) == {"ann": 2, "bo": 2, None: 4}


# --- lists -----------------------------------------------------------------------------------

@pytest.fixture
def queue(store: PendingStore) -> PendingStore:
    """a: pending mail of support-bot; b: approved deploy of ops-bot; c: denied mail of ops-bot;
    d: pending mail of ops-bot for another group; created in that order."""
    added(store, id="p_a", minute=0)
    added(store, id="p_b", minute=1, agent="ops-bot", action="deploy.restart",
          route="sre", state=State.APPROVED)
    added(store, id="p_c", minute=2, agent="ops-bot", state=State.DENIED)
    added(store, id="p_d", minute=3, agent="ops-bot", route=None)
    return store


@pytest.mark.parametrize("filters, ids", [
    ({}, ["p_a", "p_b", "p_c", "p_d"]),
    ({"states": [State.PENDING]}, ["p_a", "p_d"]),
    ({"states": {State.APPROVED, State.DENIED}}, ["p_b", "p_c"]),
    ({"states": []}, []),
    ({"route": "support-leads"}, ["p_a", "p_c"]),
    ({"agent": "ops-bot"}, ["p_b", "p_c", "p_d"]),
    ({"action": "deploy.restart"}, ["p_b"]),
    ({"agent": "ops-bot", "action": "email.send", "states": [State.PENDING]}, ["p_d"]),
    ({"limit": 2}, ["p_a", "p_b"]),
    ({"agent": "nobody"}, []),
])
def test_lists_filter_and_come_oldest_first(
        queue: PendingStore, filters: dict[str, object], ids: list[str]) -> None:
    assert [i.id for i in queue.list(**filters)] == ids  # type: ignore[arg-type]


def test_listed_items_carry_their_votes_oldest_first(queue: PendingStore) -> None:
    queue.vote("p_a", approve("ann"), approvals_needed=3)
    queue.vote("p_d", approve("cy"), approvals_needed=3)
    queue.vote("p_a", approve("bo"), approvals_needed=3)
    listed = {i.id: i for i in queue.list()}
    assert [v.reviewer for v in listed["p_a"].votes] == ["ann", "bo"]
    assert [v.reviewer for v in listed["p_d"].votes] == ["cy"]
    assert listed["p_b"].votes == ()
    assert listed["p_a"] == queue.get("p_a")


def test_a_state_database_from_before_queue_health_is_upgraded(path: Path) -> None:
    """The columns assignment and second review added are added to an older table."""
    first = SQLitePendingStore(path)
    kept = added(first)
    first.close()
    old = sqlite3.connect(path)
    old.execute("DROP INDEX pending_items_by_assignee")
    for column in ("assigned_to", "assigned_at", "second_review"):
        old.execute(f"ALTER TABLE pending_items DROP COLUMN {column}")
    old.commit()
    old.close()
    upgraded = SQLitePendingStore(path)
    assert upgraded.get(kept.id) == kept
    assigned = upgraded.assign(kept.id, ["ann", "bo"], cap=None)
    upgraded.close()
    again = SQLitePendingStore(path)
    assert again.get(kept.id) == assigned and assigned.assigned_to == "ann"
    again.close()


def test_a_second_review_keeps_the_item_pending_for_one_more_approval_once(
        store: PendingStore) -> None:
    kept = added(store)
    drawn = store.vote(kept.id, approve("ann"), approvals_needed=1, second_review=True)
    assert (drawn.state, drawn.second_review, drawn.approvals_needed) == (State.PENDING, True, 2)
    released = store.vote(kept.id, approve("bo"), approvals_needed=2, second_review=True)
    assert released.state is State.APPROVED  # drawn once: no third reviewer


def test_assignment_only_counts_open_items_and_leaves_decided_ones_alone(
        store: PendingStore) -> None:
    one, two = added(store), added(store)
    assert store.assign(one.id, ["ann"], cap=1).assigned_to == "ann"
    assert store.assign(two.id, ["ann"], cap=1).assigned_to is None  # ann is at the cap
    store.finish(one.id, State.CANCELLED, "withdrawn")
    assert store.assign(two.id, ["ann"], cap=1).assigned_to == "ann"
    assert store.assign(one.id, ["bo"], cap=1).assigned_to == "ann"  # decided: unchanged


def test_queue_entries_are_open_items_and_recent_decisions(store: PendingStore) -> None:
    waiting, decided = added(store), added(store)
    store.vote(decided.id, approve("ann"), approvals_needed=1)
    assert [e.state for e in store.queue_entries("2000-01-01T00:00:00Z")] == [
        State.PENDING, State.APPROVED]
    assert [e.state for e in store.queue_entries("2999-01-01T00:00:00Z")] == [State.PENDING]
    assert store.open_by_route() == {waiting.route: 1}
    assert store.approval_times("ann", "2000-01-01T00:00:00Z") == [approve("ann").at]
    assert [v.reviewer for v in store.votes_since("2000-01-01T00:00:00Z")] == ["ann"]
