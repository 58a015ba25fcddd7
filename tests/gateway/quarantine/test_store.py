"""The quarantine store, on SQLite and on PostgreSQL: items come back as kept, and a decision or
a delivery racing another, on one gateway or several, has exactly one winner."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from gateway.postgres.quarantine import PostgresQuarantineStore
from gateway.quarantine.store import (
    QuarantineItem,
    QuarantineStore,
    ReleaseAs,
    SQLiteQuarantineStore,
    State,
)
from tests.gateway.postgres.places import Place, store_fixtures

where, store = store_fixtures(SQLiteQuarantineStore, PostgresQuarantineStore)


def held(minute: int, **changes: object) -> QuarantineItem:
    base = QuarantineItem(
        id=QuarantineItem.new_id(), created_at=f"2026-01-01T00:{minute:02d}:00.000000Z",
        agent="support-bot", request_id=f"req_{minute}", request_hash="h1", action="crm.read",
        method="GET", url="https://crm.example/customers/1?q=Zoë", status=200,
        headers=[["content-type", "application/json"], ["x-note", "Grüße"]],
        original="ab" * 32, redacted="cd" * 32, outcome="quarantine", note=None,
        records=[{"entity": "US_SSN", "path": "$.ssn", "score": 0.85}])
    return replace(base, **changes)


def kept(store: QuarantineStore, minute: int, **changes: object) -> QuarantineItem:
    item = held(minute, **changes)
    store.add(item)
    return item


def test_an_item_comes_back_as_kept_and_survives_a_restart(where: Place[QuarantineStore]) -> None:
    first = where.open()
    item = kept(first, 0, redacted=None, outcome="unscannable", note="body too large")
    first.close()
    second = where.open()
    assert second.get(item.id) == item
    assert second.get("q_0000000000000000") is None
    second.close()


def test_lists_filter_and_come_oldest_first(store: QuarantineStore) -> None:
    later = kept(store, 2, agent="ops-bot")
    first = kept(store, 0)
    middle = kept(store, 1)
    store.decide(middle.id, to=State.DISCARDED, released_as=None, by="erin",
                 at="2026-01-01T01:00:00.000000Z", reason="noise", from_states=(State.HELD,))
    assert [i.id for i in store.list(state=None, agent=None, limit=10)] == [
        first.id, middle.id, later.id]
    assert [i.id for i in store.list(state=State.HELD, agent=None, limit=10)] == [
        first.id, later.id]
    assert [i.id for i in store.list(state=None, agent="ops-bot", limit=10)] == [later.id]
    assert [i.id for i in store.list(state=None, agent=None, limit=1)] == [first.id]
    assert {i.id for i in store.open_items()} == {first.id, later.id}


def test_a_retry_meets_the_newest_item_of_its_agent_and_request(store: QuarantineStore) -> None:
    kept(store, 0)
    newest = kept(store, 5)
    kept(store, 9, agent="ops-bot")
    kept(store, 9, request_hash="h2")
    assert store.latest_for("support-bot", "h1") == newest
    assert store.latest_for("support-bot", "h3") is None


def test_a_release_is_delivered_once_and_can_be_undone(store: QuarantineStore) -> None:
    item = kept(store, 0)
    assert store.deliver(item.id, at="2026-01-01T00:10:00.000000Z", request_id="r2") is None
    released = store.decide(item.id, to=State.RELEASED, released_as=ReleaseAs.REDACTED,
                            by="erin", at="2026-01-01T00:05:00.000000Z", reason="plan only",
                            from_states=(State.HELD,))
    assert released is not None and released.released_as is ReleaseAs.REDACTED
    delivered = store.deliver(item.id, at="2026-01-01T00:10:00.000000Z", request_id="r2")
    assert delivered is not None and delivered.delivered_to == "r2"
    assert store.deliver(item.id, at="2026-01-01T00:11:00.000000Z", request_id="r3") is None
    store.undeliver(item.id)
    assert store.get(item.id) == released


def race(stores: list[QuarantineStore],
         work: Callable[[int, QuarantineStore], QuarantineItem | None]) -> list[object]:
    gate = threading.Barrier(len(stores))
    results: list[object] = [None] * len(stores)

    def run(i: int) -> None:
        gate.wait()
        results[i] = work(i, stores[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def gateways(where: Place[QuarantineStore]) -> Iterator[list[QuarantineStore]]:
    """Six stores on one state, as six gateway processes would have."""
    opened = [where.open() for _ in range(6)]
    yield opened
    for each in opened:
        each.close()


def test_racing_release_and_discard_have_one_winner(gateways: list[QuarantineStore]) -> None:
    item = kept(gateways[0], 0)

    def decide(i: int, store: QuarantineStore) -> QuarantineItem | None:
        to = State.RELEASED if i % 2 else State.DISCARDED
        return store.decide(item.id, to=to, released_as=ReleaseAs.ORIGINAL if i % 2 else None,
                            by=f"reviewer-{i}", at="2026-01-01T00:05:00.000000Z", reason="race",
                            from_states=(State.HELD,))

    [winner] = [r for r in race(gateways, decide) if r is not None]
    assert gateways[0].get(item.id) == winner


def test_racing_retries_receive_a_release_once(gateways: list[QuarantineStore]) -> None:
    item = kept(gateways[0], 0)
    gateways[0].decide(item.id, to=State.RELEASED, released_as=ReleaseAs.REDACTED, by="erin",
                       at="2026-01-01T00:05:00.000000Z", reason="ok", from_states=(State.HELD,))
    results = race(gateways, lambda i, store: store.deliver(
        item.id, at="2026-01-01T00:06:00.000000Z", request_id=f"req_{i}"))
    [winner] = [r for r in results if r is not None]
    assert gateways[0].get(item.id) == winner
