"""Retention: what a sweep lets go, and what legal holds keep."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.incidents.store import Incident
from gateway.policy.schema import Retention
from gateway.retention import Cover, HoldError, LegalHold, new_hold, sweep

NOW = datetime(2026, 6, 30, tzinfo=UTC)
A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def kept(ts: str, agent: str, *digests: str) -> dict[str, object]:
    return {"event": "call.evidence", "ts": ts, "agent": agent,
            "evidence": {"request": digests[0], "response": digests[1] if digests[1:] else None,
                         "keep": "always"}}


def hold(**fields: object) -> LegalHold:
    return LegalHold(id="lh_1", reason="claim", actor="ann", placed_at="2026-06-01T00:00:00Z",
                     **fields)  # type: ignore[arg-type]


def cover(*holds: LegalHold, incident: Incident | None = None) -> Cover:
    return Cover(list(holds), lambda _: incident, lambda _: "2026-06-10T12:00:00.000000Z")


WEEK = Retention(evidence="7d")


def swept(records: list[dict[str, object]], covering: Cover,
          retention: Retention = WEEK) -> list[str]:
    return sorted(sweep(records, retention, covering, NOW, lambda _: True).deleted)


OLD = "2026-06-10T12:05:00.000000Z"
NEW = "2026-06-29T00:00:00.000000Z"


def test_files_past_retention_go_unless_a_newer_record_cites_them() -> None:
    records = [kept(OLD, "bot", A, B), kept(OLD, "bot", C), kept(NEW, "bot", B)]
    assert swept(records, cover()) == [A, C]


def test_without_a_retention_nothing_goes() -> None:
    assert swept([kept(OLD, "bot", A)], cover(), Retention()) == []


@pytest.mark.parametrize(("the_hold", "kept_agent"), [
    (hold(agent="bot"), "bot"),
    (hold(since="2026-06-10T00:00:00.000000Z", until="2026-06-11T00:00:00.000000Z"), "any"),
    (hold(incident="INC-0001"), "bot"),
])
def test_a_legal_hold_keeps_what_it_covers(the_hold: LegalHold, kept_agent: str) -> None:
    incident = Incident(id="INC-0001", title="t", severity="SEV-2",
                        opened_at="2026-06-10T13:00:00.000000Z", opened_by="rex", agent="bot",
                        request_id="req_1", since=None, until=None)
    records = [kept(OLD, kept_agent, A), kept(OLD, "other", D)]
    assert swept(records, cover(the_hold, incident=incident)) == (
        [D] if kept_agent == "bot" else [])


def test_a_released_hold_keeps_nothing() -> None:
    released = hold(agent="bot", released_at="2026-06-20T00:00:00Z", released_by="ann")
    assert swept([kept(OLD, "bot", A)], cover(released)) == [A]


def test_a_hold_covers_one_thing_and_says_why() -> None:
    with pytest.raises(HoldError, match="one of"):
        new_hold(reason="x", actor="ann", now=NOW, agent="bot", incident="INC-1")
    with pytest.raises(HoldError, match="reason"):
        new_hold(reason=" ", actor="ann", now=NOW, agent="bot")
    with pytest.raises(HoldError, match="after"):
        new_hold(reason="x", actor="ann", now=NOW, since=NOW, until=NOW)
