"""Two gateway processes on one PostgreSQL database: what must happen once happens once, and
what one replica decides the others hear of at once."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from gateway.approvals.model import State
from gateway.halts import Halt
from gateway.postgres.notify import HALTS, PENDING, Listener
from gateway.postgres.pending import PostgresPendingStore
from gateway.postgres.state import PostgresStateStore
from tests.gateway.approvals.test_store import approve, item
from tests.gateway.postgres.places import connect, schema_fixture

ITEMS = 30


url = schema_fixture()


def forward_all(url: str, ids: list[str], gate: Barrier, won: Queue[list[str]]) -> None:
    """One replica: open the store (migrating, racing the other), then try to forward every
    approved item; reports the ids this replica won."""
    store = PostgresPendingStore(url)
    gate.wait()
    won.put([item_id for item_id in ids if store.consume(item_id)])
    store.close()


def test_two_processes_forward_each_approved_call_once(url: str) -> None:
    store = PostgresPendingStore(url)
    ids = []
    for _ in range(ITEMS):
        kept = item()
        store.add(kept)
        store.vote(kept.id, approve("ann"), approvals_needed=1)
        ids.append(kept.id)
    spawn = multiprocessing.get_context("spawn")
    gate, won = spawn.Barrier(2), spawn.Queue()
    replicas = [spawn.Process(target=forward_all, args=(url, order, gate, won))
                for order in (ids, ids[::-1])]  # they meet in the middle
    for replica in replicas:
        replica.start()
    forwarded = won.get(timeout=60) + won.get(timeout=60)
    for replica in replicas:
        replica.join(timeout=10)
    assert sorted(forwarded) == sorted(ids)  # each once, none lost
    assert {store.get(i).state for i in ids} == {State.CONSUMED}  # type: ignore[union-attr]
    store.close()


def test_decisions_and_halts_reach_every_listening_replica_once_committed(url: str) -> None:
    """What a replica hears: a resync when it connects, then each decided item and each halt
    set or lifted, whoever made the change."""
    pending, state = PostgresPendingStore(url), PostgresStateStore(url)
    kept = item()
    pending.add(kept)

    async def scenario() -> list[tuple[str, str]]:
        heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        listener = Listener(url, asyncio.get_running_loop(), {
            PENDING: lambda i: heard.put_nowait((PENDING, i)),
            HALTS: lambda i: heard.put_nowait((HALTS, i))},
            lambda: heard.put_nowait(("resync", "")))
        got = [await asyncio.wait_for(heard.get(), 5)]
        pending.vote(kept.id, approve("ann"), approvals_needed=1)
        state.add_halt(Halt("h_1", "all", "", "drill", "rex", "2026-01-01T00:00:00Z"))
        state.lift_halt("h_1", "rex")
        assert state.lift_halt("h_1", "rex") is None  # not lifted again, so not announced
        got += [await asyncio.wait_for(heard.get(), 5) for _ in range(3)]
        await asyncio.sleep(0.2)
        listener.close()
        return got + [heard.get_nowait() for _ in range(heard.qsize())]

    assert asyncio.run(scenario()) == [("resync", ""), (PENDING, kept.id), (HALTS, "h_1"),
                                       (HALTS, "h_1")]
    pending.close()
    state.close()


def test_a_listener_whose_connection_dropped_reconnects_and_resyncs(url: str) -> None:
    """Changes announced meanwhile are lost, so the replica reloads everything instead."""

    async def scenario() -> None:
        resyncs: asyncio.Queue[str] = asyncio.Queue()
        listener = Listener(url, asyncio.get_running_loop(), {},
                            lambda: resyncs.put_nowait("resync"))
        await asyncio.wait_for(resyncs.get(), 5)
        with connect(url) as db:
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = 'gatehouse listener' "
                       "AND datname = current_database()")
        await asyncio.wait_for(resyncs.get(), 5)
        listener.close()

    asyncio.run(scenario())
