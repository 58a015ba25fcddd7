"""The incident chain: for the bad call, what each layer did and the evidence for it.

When an approved call still harms someone, three things failed at once: the agent chose the
call (its model call, the documents it had read), the policy classified it (which rules fired,
under which snapshot, changed how and when), and a person reviewed it (how long they looked,
what they were shown, how their hour had gone). Every line here is read from the audit trail,
the pending store and the policy snapshots; the failure hypotheses at the end are marked as
hypotheses, for the responders to confirm or reject.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import yaml

from gateway.approvals.model import PendingItem, Vote
from gateway.approvals.store import PendingStore
from gateway.audit import AuditLog
from gateway.clock import iso
from gateway.incidents.store import Incident
from gateway.store import StateStore

BEFORE = timedelta(minutes=15)  # how far back the agent layer looks from the bad call
QUICK_REVIEW_SECONDS = 10
READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
FORWARDED = frozenset({"allow", "allow_with_constraints", "approved", "quarantine_released"})
MAX_RECORDS = 200_000
# what a reviewer sees on GET /v1/pending/{id} (gateway.admin.pending.get_pending)
SHOWN_IN_REVIEW = ["action", "parameters", "request (method, URL, headers, body)",
                   "rule reason", "rollback note", "this agent's previous decisions"]
NOT_SHOWN_IN_REVIEW = ["documents the agent fetched", "the model call that produced the call"]


def _when(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class ChainBuilder:
    def __init__(self, audit: AuditLog, state: StateStore, pending: PendingStore) -> None:
        self._audit = audit
        self._state = state
        self._pending = pending

    def build(self, incident: Incident) -> dict[str, object]:
        call = self._call(incident.request_id)
        agent = incident.agent or (call or {}).get("agent")
        at = _when(str(call["ts"])) if call else _when(incident.since or incident.opened_at)
        since = at - BEFORE if call else at
        until = _when(incident.until or incident.opened_at)
        records = (self._audit.query(agent=str(agent), since=since, until=until,
                                     limit=MAX_RECORDS) if agent else [])
        item = self._pending.get(str(call["pending_id"])) if call and call.get(
            "pending_id") else None
        layers = {
            "agent": self._agent_layer(call, records, at),
            "policy": self._policy_layer(call, at),
            "review": self._review_layer(item),
        }
        return {
            "incident": incident.to_json(),
            "bad_call": _call_summary(call) if call else None,
            "window": {"since": iso(since), "until": iso(until)},
            "layers": layers,
            "hypotheses": hypotheses(layers),
            "timeline": timeline(records, item, incident),
            "rollback": rollback_inventory(records),
        }

    def _call(self, request_id: str | None) -> dict[str, Any] | None:
        if request_id is None:
            return None
        found = self._audit.query(event="call.decided", request_id=request_id, limit=1)
        return found[0] if found else None

    def _agent_layer(self, call: dict[str, Any] | None, records: list[dict[str, Any]],
                     at: datetime) -> dict[str, object]:
        before = [r for r in records if _when(r["ts"]) <= at]
        model_calls = [r for r in before if r["event"] == "call.llm"][-5:]
        values = [str(v) for v in (call.get("params") or {}).values() if v] if call else []
        return {
            "call": _call_summary(call) if call else None,
            "model_calls": [{
                "at": r["ts"], "request_id": r.get("request_id"), "model": r.get("model"),
                "temperature": r.get("temperature"), "tools": r.get("tools", []),
                "tool_calls": r.get("tool_calls", []),
                "produced_the_call": bool(call) and any(
                    produced(c, str(call.get("action")), values)
                    for c in r.get("tool_calls", [])),
            } for r in model_calls],
            "documents": [{
                "at": r["ts"], "request_id": r.get("request_id"), "url": r.get("url"),
                "sha256": r.get("sha256"), "instruction_like": r.get("instruction_like", []),
                "kept_as_evidence": r.get("kept", False),
            } for r in before if r["event"] == "call.document"],
        }

    def _policy_layer(self, call: dict[str, Any] | None, at: datetime) -> dict[str, object]:
        if call is None:
            return {"note": "no call was named, so no classification to examine"}
        snapshot_id = call.get("snapshot_id")
        snapshot = self._state.snapshot(str(snapshot_id)) if snapshot_id else None
        rules = _rules(snapshot)
        fired = [rules.get(rule_id, {"id": rule_id}) for rule_id in call.get("rule_ids", [])]
        previous = self._previous_snapshot(snapshot)
        return {
            "decision": call.get("decision"), "verdict": call.get("verdict"),
            "rules_fired": fired,
            "snapshot_id": snapshot_id,
            "revision": snapshot.get("revision") if snapshot else None,
            "active_since": snapshot.get("first_active_at") if snapshot else None,
            "active_for_seconds": round((at - _when(str(snapshot["first_active_at"])))
                                        .total_seconds()) if snapshot else None,
            "previous_snapshot_id": previous.get("snapshot_id") if previous else None,
            "changes_from_previous": rule_changes(_rules(previous), rules) if previous else [],
            "missing_dimensions": [hint for rule in fired if (hint := missing_dimension(rule))],
        }

    def _previous_snapshot(self, snapshot: dict[str, object] | None) -> dict[str, object] | None:
        if snapshot is None:
            return None
        older = [s for s in self._state.snapshots()
                 if str(s["first_active_at"]) < str(snapshot["first_active_at"])]
        return self._state.snapshot(str(older[-1]["snapshot_id"])) if older else None

    def _review_layer(self, item: PendingItem | None) -> dict[str, object]:
        if item is None:
            return {"note": "the call was not held for review"}
        return {
            "pending_id": item.id, "tier": item.tier, "route": item.route,
            "held_at": item.created_at, "shown": SHOWN_IN_REVIEW,
            "not_shown": NOT_SHOWN_IN_REVIEW,
            "votes": [self._vote(vote) for vote in item.votes],
        }

    def _vote(self, vote: Vote) -> dict[str, object]:
        at = _when(vote.at)
        hour = [v for v in self._pending.votes_since(iso(at - timedelta(hours=1)))
                if v.reviewer == vote.reviewer and _when(v.at) < at]
        approvals = sum(1 for v in hour if v.verdict == "approve")
        seconds = (at - _when(vote.opened_at)).total_seconds() if vote.opened_at else None
        depth = sum(1 for i in self._pending.list(limit=10_000)
                    if _when(i.created_at) <= at and (i.decided_at is None
                                                      or _when(i.decided_at) >= at))
        flags = []
        if vote.verdict == "approve" and seconds is not None and seconds < QUICK_REVIEW_SECONDS:
            flags.append(f"approved in under {QUICK_REVIEW_SECONDS} s")
        if not vote.reason.strip():
            flags.append("no reason given")
        if len(hour) >= 5 and approvals == len(hour):
            flags.append("approval streak")
        return {
            "reviewer": vote.reviewer, "verdict": vote.verdict, "at": vote.at,
            "first_opened": vote.opened_at,
            "seconds_to_vote": round(seconds, 1) if seconds is not None else None,
            "reason": vote.reason,
            "pattern": {"reviews_in_previous_hour": len(hour),
                        "approval_rate": round(approvals / len(hour), 2) if hour else None,
                        "queue_depth": depth, "hour_of_day_utc": at.hour},
            "flags": flags,
        }


def _words(name: str) -> frozenset[str]:
    return frozenset(re.split(r"[._\-/:]+", name.lower())) - {"mcp", ""}


def produced(tool_call: dict[str, Any], action: str, values: list[str]) -> bool:
    """Whether a model's tool call is the one that became the call: the same words in its
    name (`send_email` for `email.send` or `mcp.send_email`), or a parameter of the call
    (a recipient, an amount) in its arguments."""
    name = tool_call.get("name")
    arguments = str(tool_call.get("arguments", ""))
    return (isinstance(name, str) and _words(name) == _words(action)) or any(
        value in arguments for value in values)


def _call_summary(call: dict[str, Any]) -> dict[str, object]:
    keys = ("request_id", "ts", "agent", "method", "url", "action", "tags", "params",
            "decision", "rule_ids", "pending_id", "approved_by")
    return {key: call.get(key) for key in keys}


def _rules(snapshot: dict[str, object] | None) -> dict[str, dict[str, Any]]:
    if snapshot is None:
        return {}
    document = yaml.safe_load(str(snapshot["text"])) or {}
    return {str(rule.get("id")): rule for rule in document.get("rules", [])
            if isinstance(rule, dict)}


def rule_changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
                 ) -> list[str]:
    """`rule outbound-email: tier 2 → 1`, rule by rule, key by key."""
    changes = []
    for rule_id in sorted(before.keys() | after.keys()):
        old, new = before.get(rule_id), after.get(rule_id)
        if old is None:
            changes.append(f"rule {rule_id} added")
        elif new is None:
            changes.append(f"rule {rule_id} removed")
        else:
            changes += [f"rule {rule_id}: {key} {old.get(key)} → {new.get(key)}"
                        for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    return changes


def missing_dimension(rule: dict[str, Any]) -> str | None:
    """A rule that decided on the action type alone looked at nothing else about the call."""
    when = rule.get("when")
    if isinstance(when, dict) and set(when) <= {"action"}:
        return (f"rule {rule.get('id')} matched on action only: nothing looked at the "
                "parameters, the agent, or what the agent had read")
    return None


def hypotheses(layers: dict[str, dict[str, Any]]) -> list[dict[str, object]]:
    """One failure hypothesis per layer with the evidence behind it, ranked: the layer with
    the most direct evidence is primary. Marked as hypotheses: people confirm them."""
    found: list[dict[str, object]] = []
    agent = layers["agent"]
    injected = [d for d in agent.get("documents", []) if d["instruction_like"]]
    producing = [m for m in agent.get("model_calls", []) if m["produced_the_call"]]
    if injected:
        found.append({"layer": "agent", "statement": "the agent acted on instruction-like text "
                      "in a document it had fetched (a likely prompt injection)",
                      "evidence": [f"{d['url']} ({d['request_id']}): "
                                   f"{', '.join(d['instruction_like'])}" for d in injected]
                      + [f"model call {m['request_id']} returned the tool call"
                         for m in producing]})
    elif producing:
        found.append({"layer": "agent", "statement": "the model chose this call",
                      "evidence": [f"model call {m['request_id']} ({m['model']}, temperature "
                                   f"{m['temperature']})" for m in producing]})
    policy = layers["policy"]
    policy_evidence = list(policy.get("missing_dimensions", [])) + [
        change for change in policy.get("changes_from_previous", [])
        if any(rule.get("id") and f"rule {rule['id']}" in change
               for rule in policy.get("rules_fired", []))]
    if policy_evidence:
        found.append({"layer": "policy", "statement": "the policy classified the call too "
                      "coarsely to stop it", "evidence": policy_evidence})
    flagged = [v for v in layers["review"].get("votes", []) if v["flags"]]
    if flagged:
        found.append({"layer": "review", "statement": "the review was too quick or too "
                      "routine to catch it, and did not show what the agent had read",
                      "evidence": [f"{v['reviewer']}: {', '.join(v['flags'])}"
                                   for v in flagged]})
    for rank, hypothesis in enumerate(found):
        hypothesis["rank"] = "primary" if rank == 0 else "secondary"
        hypothesis["hypothesis"] = True
    return found


def timeline(records: list[dict[str, Any]], item: PendingItem | None,
             incident: Incident) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for r in records:
        if r["event"] == "call.decided":
            events.append({"at": r["ts"], "what": f"{r.get('method')} {r.get('url')} "
                           f"({r.get('action')})", "outcome": r.get("decision"),
                           "request_id": r.get("request_id")})
        elif r["event"] in ("call.llm", "call.document", "call.result", "call.response"):
            events.append({"at": r["ts"], "what": r["event"], "outcome": r.get("status"),
                           "request_id": r.get("request_id")})
    for vote in item.votes if item else ():
        events.append({"at": vote.at, "what": f"{vote.reviewer} votes {vote.verdict} on "
                       f"{item.id if item else ''}", "outcome": vote.reason or "(no reason)",
                       "request_id": None})
    events.append({"at": incident.opened_at, "what": f"incident {incident.id} opened by "
                   f"{incident.opened_by}", "outcome": incident.severity, "request_id": None})
    if incident.contained_at:
        events.append({"at": incident.contained_at, "what": f"halt {incident.halt_id} set",
                       "outcome": "contained", "request_id": None})
    return sorted(events, key=lambda e: _when(str(e["at"])))


def rollback_inventory(records: list[dict[str, Any]]) -> list[dict[str, object]]:
    """Every side-effecting call of the agent in the window that went out, with the ids its
    response handed back. Model calls are POSTs that change nothing: they are left out."""
    ids = {r.get("request_id"): r.get("ids", {}) for r in records if r["event"] == "call.result"}
    model_calls = {r.get("request_id") for r in records if r["event"] == "call.llm"}
    return [{"at": r["ts"], "request_id": r.get("request_id"), "action": r.get("action"),
             "method": r.get("method"), "url": r.get("url"), "decision": r.get("decision"),
             "ids": ids.get(r.get("request_id"), {})}
            for r in records if r["event"] == "call.decided"
            and r.get("method") not in READ_ONLY and r.get("decision") in FORWARDED
            and r.get("request_id") not in model_calls]
