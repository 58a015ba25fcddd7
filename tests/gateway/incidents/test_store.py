"""The incident store, on SQLite and on PostgreSQL: sequential ids that never repeat, kept across
restarts, even when two gateways open incidents at once."""

from __future__ import annotations

import threading

from gateway.incidents.store import Incident, IncidentStore, SQLiteIncidentStore
from gateway.postgres.incidents import PostgresIncidentStore
from tests.gateway.postgres.places import Place, store_fixtures

where, store = store_fixtures(SQLiteIncidentStore, PostgresIncidentStore)


def incident(title: str = "misleading email sent") -> Incident:
    return Incident(id="", title=title, severity="SEV-2", opened_at="2026-01-01T00:00:00Z",
                    opened_by="rex", agent="support-bot", request_id="req_1", since=None,
                    until=None)


def test_ids_are_sequential_and_survive_a_restart(where: Place[IncidentStore]) -> None:
    store = where.open()
    assert [store.add(incident()).id for _ in range(2)] == ["INC-0001", "INC-0002"]
    store.close()
    store = where.open()
    assert store.add(incident()).id == "INC-0003"
    assert [i.id for i in store.list(limit=10)] == ["INC-0003", "INC-0002", "INC-0001"]
    assert store.get("INC-0001") == Incident(**{**incident().to_json(), "id": "INC-0001"})
    assert store.get("INC-9999") is None
    store.close()


def test_two_gateways_opening_at_once_never_share_an_id(where: Place[IncidentStore]) -> None:
    stores = [where.open() for _ in range(2)]
    ids: list[str] = []
    start = threading.Barrier(2)

    def open_many(store: IncidentStore) -> None:
        start.wait()
        ids.extend(store.add(incident()).id for _ in range(25))

    threads = [threading.Thread(target=open_many, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == [f"INC-{n:04d}" for n in range(1, 51)]
    for opened in stores:
        opened.close()


def test_containment_is_recorded_on_the_incident(store: IncidentStore) -> None:
    opened = store.add(incident())
    contained = store.contained(opened.id, "h_1", "2026-01-01T00:00:01Z")
    assert contained is not None and (contained.halt_id, contained.contained_at) == (
        "h_1", "2026-01-01T00:00:01Z")
    assert store.get(opened.id) == contained
    assert store.contained("INC-0404", "h_1", "2026-01-01T00:00:01Z") is None
