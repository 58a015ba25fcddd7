"""Opening incidents and containing them: by a responder, or by a trigger that fired.

An incident names the bad call (its request id, as the agent received it) or a window. The
policy's `incidents.severities` says what opening one does: halt the agent of the bad call, its
action type, or nothing; `contain: true` halts the agent whatever the severity says. The halt is
set before anything else is written, since containment is measured in seconds: the metric
`gatehouse_incident_containment_seconds` is the time from the request to the halt in force.

Triggers (`gateway.triggers`) watch the audit trail as it is written; one that fires halts what
it names, opens an incident with the request ids that made it fire, and is audited as
`trigger.fired`. Halts announce themselves to the reviewers' webhooks (`HaltService.on_set`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from gateway.audit import AuditLog
from gateway.background import Background
from gateway.clock import iso, utc_now_iso
from gateway.halt_service import HaltService
from gateway.halts import Halt
from gateway.incidents.chain import ChainBuilder
from gateway.incidents.store import Incident, IncidentStore
from gateway.metrics import Metrics
from gateway.policy import Policy
from gateway.policy_holder import PolicyHolder
from gateway.triggers import Firing, TriggerWatch

log = logging.getLogger("gatehouse.incidents")

SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")


class IncidentError(ValueError):
    """A request to open an incident that cannot be honoured as given."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class IncidentService:
    def __init__(self, store: IncidentStore, audit: AuditLog, policy: PolicyHolder,
                 halts: HaltService, metrics: Metrics, chains: ChainBuilder) -> None:
        self.store = store
        self.chains = chains
        self._audit = audit
        self._policy = policy
        self._halts = halts
        self._metrics = metrics
        self._watch = TriggerWatch(policy.current.model.triggers)
        self._background = Background(log)
        policy.on_change.append(self._new_policy)
        audit.on_append.append(self._observe)

    async def open(self, *, title: str, severity: str, actor: str, request_id: str | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   agent: str | None = None, contain: bool = False) -> Incident:
        """Open an incident as a responder asked; contained as its severity requires."""
        started = time.monotonic()
        if not title.strip():
            raise IncidentError("an incident needs a `title`: what harm was done, in a line")
        if severity not in SEVERITIES:
            raise IncidentError(f"unknown severity `{severity}`; use one of "
                                f"{', '.join(SEVERITIES)}")
        if (request_id is None) == (since is None):
            raise IncidentError("name the bad call (`request_id`, the X-Gatehouse-Request-Id "
                                "the agent received) or a window (`since`, optional `until`), "
                                "not both")
        if since is not None and until is not None and until <= since:
            raise IncidentError("`until` must come after `since`")
        action = None
        if request_id is not None:
            call = self._bad_call(request_id)
            if agent is not None and call.get("agent") != agent:
                raise IncidentError(f"call `{request_id}` was made by `{call.get('agent')}`, "
                                    f"not `{agent}`")
            agent, action = call.get("agent"), call.get("action")  # type: ignore[assignment]
        scope = self._policy.current.model.incidents.response(severity).halt
        if contain and scope == "none":
            scope = "agent"
        incident = Incident(
            id="", title=title.strip(), severity=severity, opened_at=utc_now_iso(),
            opened_by=actor, agent=agent, request_id=request_id,
            since=iso(since) if since else None, until=iso(until) if until else None)
        return await self._record(incident, scope, action, started, source="responder")

    async def fire(self, firing: Firing) -> None:
        """A trigger fired: halt what it names unless a halt covers it already, open an
        incident with the evidence, and audit it all."""
        started = time.monotonic()
        trigger = firing.trigger
        scope = trigger.halt
        if scope == "action" and firing.action is None:
            scope = "agent"  # a call with no action type: the agent is what can be halted
        covered = self._halts.board.match(
            agent=firing.agent if scope == "agent" else None, tenant=None, host=None,
            action=firing.action if scope == "action" else None)
        if covered is not None:
            return  # contained already: a second incident would be noise
        incident = Incident(
            id="", title=firing.summary, severity=trigger.severity, opened_at=utc_now_iso(),
            opened_by=f"trigger:{trigger.id}", agent=firing.agent, request_id=firing.evidence[-1],
            since=None, until=None, evidence=list(firing.evidence))
        incident = await self._record(incident, scope, firing.action, started, source="trigger")
        self._metrics.triggers_fired.labels(trigger.id).inc()
        await self._audit.append("trigger.fired", {
            "trigger": trigger.id, "count": list(trigger.count), "at_least": trigger.at_least,
            "within_seconds": trigger.within.total_seconds(), "agent": firing.agent,
            "action": firing.action, "evidence": list(firing.evidence),
            "incident_id": incident.id, "halt_id": incident.halt_id})

    async def _record(self, incident: Incident, scope: str, action: str | None,
                      started: float, *, source: str) -> Incident:
        incident = self.store.add(incident)
        self._metrics.incidents_opened.labels(incident.severity, source).inc()
        halt = await self._contain(incident, scope, action) if scope != "none" else None
        if halt is not None:
            incident = self.store.contained(incident.id, halt.id, utc_now_iso()) or incident
            self._metrics.containment_seconds.labels(incident.severity).observe(
                time.monotonic() - started)
        await self._audit.append("incident.opened", {
            **incident.to_json(), "incident_id": incident.id, "actor": incident.opened_by})
        return incident

    async def _contain(self, incident: Incident, scope: str, action: str | None) -> Halt:
        target = incident.agent if scope == "agent" else action
        if target is None:
            raise IncidentError(f"severity {incident.severity} halts the {scope} of the bad "
                                f"call, and none is known: name the call (`request_id`) or the "
                                "`agent`", status=422)
        covering = self._halts.board.match(agent=target if scope == "agent" else None,
                                           tenant=None, host=None,
                                           action=target if scope == "action" else None)
        if covering is not None:
            return covering
        return await self._halts.set(scope, target, f"incident {incident.id}: {incident.title}",
                                     incident.opened_by)

    def _bad_call(self, request_id: str) -> dict[str, object]:
        found = self._audit.query(event="call.decided", request_id=request_id, limit=1)
        if not found:
            raise IncidentError(f"no call with request id `{request_id}` in the audit trail; "
                                "use the X-Gatehouse-Request-Id the agent received", status=404)
        return found[0]

    def _new_policy(self, policy: Policy) -> None:
        """New triggers start with empty windows."""
        self._watch = TriggerWatch(policy.model.triggers)

    def _observe(self, event: str, fields: dict[str, object]) -> None:
        for firing in self._watch.observe(event, fields, time.monotonic()):
            self._background.spawn(self.fire(firing), f"containing {firing.summary}")
