"""Two gateway processes on one PostgreSQL database: what must happen once happens once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest

from gateway.approvals.model import State
from gateway.postgres.pending import PostgresPendingStore
from tests.gateway.approvals.test_store import approve, item
from tests.gateway.postgres.places import throwaway_schema

ITEMS = 30


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with throwaway_schema(request) as where:
        yield where


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
