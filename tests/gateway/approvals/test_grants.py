"""Standing grants: what they cover, how long and how often, and what they never cover."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from pydantic import ValidationError

from gateway.approvals.grants import GrantRequest, GrantStore, SQLiteGrantStore, new_grant
from gateway.call import Action
from gateway.clock import iso, utc_now
from gateway.postgres.grants import PostgresGrantStore
from tests.gateway.postgres.places import Place, store_fixtures


def request(**overrides: object) -> GrantRequest:
    fields: dict[str, object] = {"agent": "ops-bot", "action": "deploy.*",
                                 "params": {"replicas": {"lte": 3}}, "expires_in": "30m",
                                 "max_uses": 2, "reason": "incident INC-7 restarts"}
    return GrantRequest.model_validate({**fields, **overrides})


RESTART = Action(type="deploy.restart", params={"replicas": 2})


@pytest.mark.parametrize(("agent", "action", "tier", "covered"), [
    ("ops-bot", RESTART, 1, True),
    ("ops-bot", RESTART, 2, False),  # tiers 2 and 3 never pass on a grant
    ("ops-bot", RESTART, 3, False),
    ("support-bot", RESTART, 1, False),  # one agent only
    ("ops-bot", Action(type="payments.refund"), 1, False),
    ("ops-bot", Action(type="deploy.restart", params={"replicas": 9}), 1, False),
    ("ops-bot", Action(type="deploy.restart"), 1, False),  # the condition needs the param
    ("ops-bot", Action(type="deploy.restart", unreadable=frozenset({"replicas"})), 1, False),
])
def test_a_grant_covers_only_its_agent_actions_and_params_on_tier_1(
        agent: str, action: Action, tier: int, covered: bool) -> None:
    assert new_grant(request(), "dave").covers(agent, action, tier) is covered


@pytest.mark.parametrize(("overrides", "words"), [
    ({"expires_in": "25h"}, "at most 24h"),
    ({"action": "*"}, "no other wildcards"),
    ({"action": "*.*"}, "no other wildcards"),
    ({"action": "deploy.re*"}, "no other wildcards"),
    ({"max_uses": 0}, "greater than or equal to 1"),
    ({"reason": ""}, "at least 1 character"),
    ({"params": {"replicas": {"less": 3}}}, "less"),
])
def test_a_grant_request_is_validated(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        request(**overrides)


where, store = store_fixtures(SQLiteGrantStore, PostgresGrantStore)


@pytest.mark.parametrize("gateways", [1, 4], ids=["one gateway", "four gateways"])
def test_uses_are_counted_and_never_exceed_the_maximum(
        where: Place[GrantStore], gateways: int) -> None:
    stores = [where.open() for _ in range(gateways)]
    grant = new_grant(request(max_uses=5), "dave")
    stores[0].add(grant)
    now = iso(utc_now())
    taken: list[int | None] = []
    threads = [threading.Thread(target=lambda i=i: taken.append(
        stores[i % gateways].use(grant.id, now))) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(n for n in taken if n) == [1, 2, 3, 4, 5]  # each use numbered once
    assert stores[0].active_for("ops-bot", now) == []
    for each in stores:
        each.close()


def test_an_expired_or_revoked_grant_is_not_active(store: GrantStore) -> None:
    grant = new_grant(request(), "dave")
    store.add(grant)
    later = iso(utc_now() + timedelta(minutes=31))
    assert store.active_for("ops-bot", iso(utc_now())) == [grant]
    assert store.active_for("ops-bot", later) == []
    assert store.use(grant.id, later) is None
    assert store.revoke(grant.id, iso(utc_now())) is True
    assert store.revoke(grant.id, iso(utc_now())) is False
    assert store.active_for("ops-bot", iso(utc_now())) == []


def test_grants_are_listed_oldest_first_and_survive_a_restart(where: Place[GrantStore]) -> None:
    first = where.open()
    old, new = new_grant(request(), "dave"), new_grant(request(agent="support-bot"), "erin")
    first.add(old)
    first.add(new)
    first.close()
    second = where.open()
    assert second.list(active_at=None) == [old, new]
    assert second.get(new.id) == new and second.get("g_000000000000") is None
    assert second.use(old.id, iso(utc_now())) == 1
    assert second.list(active_at=iso(utc_now())) == [replace(old, uses=1), new]
    second.close()
