"""Retention of evidence files, and the legal holds that exempt evidence from it.

Legal holds live in the audit trail itself (`hold.placed`, `hold.released`): the trail is
durable, shared by every replica and tamper-evident, which is what a hold needs, and a hold's
history is its own chain of custody. A hold covers an agent, an incident (its agent, from
fifteen minutes before the bad call or the window's start to the window's end or the opening),
or a time range (every agent).

`sweep` deletes the evidence files a class's retention has passed (`retention.evidence` for
kept bodies, `retention.documents` for flagged pages), except those a hold covers and those
also cited by a record still within retention (files are content-addressed: one body may back
several calls). Each sweep that deletes anything writes `evidence.deleted` with the digests.
The audit records themselves are never deleted: the chain would no longer verify.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from gateway.clock import iso
from gateway.incidents.chain import BEFORE
from gateway.incidents.store import Incident
from gateway.policy.schema import Retention

Query = Callable[..., list[dict[str, object]]]


class HoldError(ValueError):
    """A hold request that cannot be honoured as given."""


def _when(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class LegalHold:
    id: str
    reason: str
    actor: str
    placed_at: str
    agent: str | None = None
    incident: str | None = None
    since: str | None = None
    until: str | None = None
    released_at: str | None = None
    released_by: str | None = None

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "active": self.released_at is None}


def new_hold(*, reason: str, actor: str, now: datetime, agent: str | None = None,
             incident: str | None = None, since: datetime | None = None,
             until: datetime | None = None) -> LegalHold:
    if not reason.strip():
        raise HoldError("a legal hold needs a `reason`: the matter it preserves evidence for")
    if sum(x is not None for x in (agent, incident, since)) != 1:
        raise HoldError("a legal hold covers one of: an `agent`, an `incident`, or a time range "
                        "(`since`, optional `until`)")
    if since is not None and until is not None and until <= since:
        raise HoldError("`until` must come after `since`")
    return LegalHold(id="lh_" + secrets.token_hex(6), reason=reason.strip(), actor=actor,
                     placed_at=iso(now), agent=agent, incident=incident,
                     since=iso(since) if since else None, until=iso(until) if until else None)


def holds_on_record(query: Query) -> list[LegalHold]:
    """Every hold ever placed, as its `hold.placed` and `hold.released` records say."""
    holds: dict[str, LegalHold] = {}
    for record in query(event="hold.placed", limit=100_000):
        fields = {k: record.get(k) for k in LegalHold.__dataclass_fields__}
        holds[str(record["id"])] = LegalHold(**fields)  # type: ignore[arg-type]
    for record in query(event="hold.released", limit=100_000):
        if (hold := holds.get(str(record["id"]))) is not None:
            holds[hold.id] = LegalHold(**{**asdict(hold), "released_at": record.get("ts"),
                                          "released_by": record.get("actor")})
    return sorted(holds.values(), key=lambda h: h.placed_at)


@dataclass
class Cover:
    """Whether a record (agent, time) falls under any active hold."""

    holds: list[LegalHold]
    incident: Callable[[str], Incident | None]
    bad_call_at: Callable[[str], str | None]  # request id -> when the call was made

    def covers(self, agent: str | None, ts: str) -> bool:
        at = _when(ts)
        for hold in self.holds:
            if hold.released_at is not None:
                continue
            if hold.agent is not None and hold.agent == agent:
                return True
            if hold.since is not None and _when(hold.since) <= at and (
                    hold.until is None or at < _when(hold.until)):
                return True
            if hold.incident is not None and self._in_incident(hold.incident, agent, at):
                return True
        return False

    def _in_incident(self, incident_id: str, agent: str | None, at: datetime) -> bool:
        incident = self.incident(incident_id)
        if incident is None or incident.agent != agent:
            return incident is None  # an unknown incident holds everything: fail safe
        called = self.bad_call_at(incident.request_id) if incident.request_id else None
        start = (_when(called) - BEFORE if called else
                 _when(incident.since) if incident.since else None)
        end = _when(incident.until or incident.opened_at)
        return (start is None or start <= at) and at <= end


@dataclass
class SweepReport:
    deleted: list[str] = field(default_factory=list)
    held: int = 0  # files past retention kept because a hold covers them
    kept_by_newer: int = 0  # files past retention also cited by a record within it

    def to_json(self) -> dict[str, object]:
        return {"deleted": len(self.deleted), "held": self.held,
                "kept_by_newer": self.kept_by_newer, "digests": self.deleted}


def _digests(record: dict[str, object]) -> list[str]:
    if record["event"] == "call.evidence":
        files = record.get("evidence")
        return [str(d) for d in (files or {}).values()  # type: ignore[union-attr]
                if isinstance(d, str) and len(d) == 64]
    return [str(record["sha256"])] if record.get("kept") and record.get("sha256") else []


def sweep(records: Iterable[dict[str, object]], retention: Retention, cover: Cover,
          now: datetime, present: Callable[[str], bool]) -> SweepReport:
    """Decide which evidence files the retention policy lets go (nothing is deleted here);
    files no longer `present` (an earlier sweep took them) are not counted again."""
    limits: dict[str, timedelta | None] = {"call.evidence": retention.evidence,
                                           "call.document": retention.documents}
    expired: dict[str, bool] = {}  # digest -> held
    current: set[str] = set()
    for record in records:
        limit = limits.get(str(record["event"]))
        digests = _digests(record)
        if not digests:
            continue
        if limit is None or _when(str(record["ts"])) > now - limit:
            current.update(digests)
            continue
        agent = record.get("agent")
        held = cover.covers(agent if isinstance(agent, str) else None, str(record["ts"]))
        for digest in digests:
            expired[digest] = expired.get(digest, False) or held
    report = SweepReport()
    for digest, held in expired.items():
        if not present(digest):
            continue
        if held:
            report.held += 1
        elif digest in current:
            report.kept_by_newer += 1
        else:
            report.deleted.append(digest)
    return report
