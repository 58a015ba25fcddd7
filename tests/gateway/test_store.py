"""The state store, on SQLite and on PostgreSQL: tokens stored hashed, halts and policy
snapshots kept."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.halts import Halt
from gateway.postgres.state import PostgresStateStore
from gateway.store import SQLiteStore, StateStore, StoreError
from gateway.tokens import Principal, Role, new_token, token_id
from tests.gateway.postgres.places import Place, store_fixtures

where, store = store_fixtures(SQLiteStore, PostgresStateStore)


def test_a_token_is_found_by_its_hash_and_never_stored_in_clear(
        store: StateStore, where: Place[StateStore]) -> None:
    token = new_token("agent")
    store.add_token("agent", "support-bot", None, token)
    assert store.find_token(token) == Principal("agent", "support-bot")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")  # right id, wrong secret
    assert store.find_token(forged) is None
    assert store.find_token("gha_not-a-token") is None
    stored = where.contents()
    assert str(token_id(token)).encode() in stored  # looking where the token's row is
    assert token.encode() not in stored


def test_people_carry_their_role(store: StateStore) -> None:
    token = new_token("person")
    store.add_token("person", "rex", Role.RESPONDER, token)
    rex = store.find_token(token)
    assert rex is not None and rex.may(Role.RESPONDER) and not rex.may(Role.AUDITOR)


def test_agents_may_nothing_on_the_admin_side() -> None:
    assert not Principal("agent", "bot").may(Role.REVIEWER)
    assert Principal("person", "root", Role.ADMIN).may(Role.REVIEWER)


def test_halts_survive_reopening_and_lift_once(where: Place[StateStore]) -> None:
    first = where.open()
    first.add_halt(Halt("h_1", "agent", "bot", "loop", "rex", "2026-01-01T00:00:00.000000Z"))
    first.close()
    second = where.open()
    assert [h.id for h in second.halts(active_only=True)] == ["h_1"]
    lifted = second.lift_halt("h_1", "rex")
    assert lifted is not None and lifted.lifted_by == "rex"
    assert second.lift_halt("h_1", "rex") is None
    assert second.halts(active_only=True) == []
    assert [h.id for h in second.halts(active_only=False)] == ["h_1"]
    second.close()


def test_snapshots_are_kept_with_their_text(store: StateStore) -> None:
    store.record_snapshot("1.0:aaaaaaaaaaaa", "1.0", "p.yaml", "version: 1")
    store.record_snapshot("1.1:bbbbbbbbbbbb", "1.1", "p.yaml", "version: 1 # b")
    assert [s["snapshot_id"] for s in store.snapshots()] == ["1.0:aaaaaaaaaaaa",
                                                            "1.1:bbbbbbbbbbbb"]
    found = store.snapshot("1.0:aaaaaaaaaaaa")
    assert found is not None and found["text"] == "version: 1"


def test_an_unreadable_store_says_so(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the state store"):
        SQLiteStore(tmp_path / "state.db")


def test_of_responders_lifting_a_halt_together_one_lifts_it(where: Place[StateStore]) -> None:
    stores = [where.open() for _ in range(4)]
    stores[0].add_halt(Halt("h_1", "all", "*", "loop", "rex", "2026-01-01T00:00:00.000000Z"))
    gate = threading.Barrier(len(stores))
    lifted: list[Halt | None] = []

    def lift(store: StateStore, actor: str) -> None:
        gate.wait()
        lifted.append(store.lift_halt("h_1", actor))

    threads = [threading.Thread(target=lift, args=(s, f"responder-{i}"))
               for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [winner] = [h for h in lifted if h is not None]
    assert stores[0].get_halt("h_1") == winner
    for each in stores:
        each.close()
