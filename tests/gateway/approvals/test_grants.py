"""Standing grants: what they cover, how long and how often, and what they never cover."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.approvals.grants import GrantRequest, SQLiteGrantStore, new_grant
from gateway.call import Action
from gateway.clock import iso, utc_now


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


@pytest.fixture
def store(tmp_path: Path) -> SQLiteGrantStore:
    return SQLiteGrantStore(tmp_path / "state.db")


def test_uses_are_counted_and_never_exceed_the_maximum(store: SQLiteGrantStore) -> None:
    grant = new_grant(request(max_uses=5), "dave")
    store.add(grant)
    now = iso(utc_now())
    taken: list[int | None] = []
    threads = [threading.Thread(target=lambda: taken.append(store.use(grant.id, now)))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(n for n in taken if n) == [1, 2, 3, 4, 5]  # each use numbered once
    assert store.active_for("ops-bot", now) == []


def test_an_expired_or_revoked_grant_is_not_active(store: SQLiteGrantStore) -> None:
    grant = new_grant(request(), "dave")
    store.add(grant)
    later = iso(utc_now() + timedelta(minutes=31))
    assert store.active_for("ops-bot", iso(utc_now())) == [grant]
    assert store.active_for("ops-bot", later) == []
    assert store.use(grant.id, later) is None
    assert store.revoke(grant.id, iso(utc_now())) is True
    assert store.revoke(grant.id, iso(utc_now())) is False
    assert store.active_for("ops-bot", iso(utc_now())) == []
