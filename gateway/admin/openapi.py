"""The OpenAPI 3.1 description of the admin API, served at /v1/openapi.json."""

from __future__ import annotations

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON = "application/json"


def _op(summary: str, roles: str, responses: dict[str, str], body: dict | None = None) -> dict:
    op: dict[str, object] = {
        "summary": summary,
        "description": f"Roles: {roles}.",
        "security": [{"bearer": []}],
        "responses": {
            code: {"description": text,
                   "content": {_JSON: {"schema": _ERROR if code[0] in "45" else {}}}}
            for code, text in responses.items()
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {_JSON: {"schema": body}}}
    return op


_HALT_BODY = {
    "type": "object",
    "required": ["scope", "reason"],
    "properties": {
        "scope": {"enum": ["all", "agent", "tenant", "host", "action"]},
        "target": {"type": "string", "description": "agent, tenant, host, or action glob"},
        "reason": {"type": "string"},
        "mode": {"enum": ["halt", "shadow"],
                 "description": "shadow: refuse writes only, recording what policy would do"},
    },
}
_AUTH = {"401": "no or bad token", "403": "role not allowed"}
_REASON_BODY = {"type": "object", "required": ["reason"],
                "properties": {"reason": {"type": "string"}}}
_HOLD_BODY = {
    "type": "object",
    "required": ["reason"],
    "properties": {
        "reason": {"type": "string"},
        "agent": {"type": "string"},
        "incident": {"type": "string", "description": "an incident id, INC-0001"},
        "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"},
    },
}
_INCIDENT_BODY = {
    "type": "object",
    "required": ["title", "severity"],
    "properties": {
        "title": {"type": "string", "description": "the harm done, in a line"},
        "severity": {"enum": ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]},
        "request_id": {"type": "string", "description": "the bad call's X-Gatehouse-Request-Id"},
        "since": {"type": "string", "format": "date-time", "description": "or a window"},
        "until": {"type": "string", "format": "date-time"},
        "agent": {"type": "string"},
        "contain": {"type": "boolean", "description": "halt the agent whatever the severity"},
    },
}
_GRANT_BODY = {
    "type": "object",
    "required": ["agent", "action", "expires_in", "max_uses", "reason"],
    "properties": {
        "agent": {"type": "string"},
        "action": {"type": "string", "description": "action type or glob, e.g. deploy.*"},
        "params": {"type": "object", "description": "conditions, as in policy rules"},
        "expires_in": {"type": "string", "description": "duration, e.g. 30m; at most 24h"},
        "max_uses": {"type": "integer", "minimum": 1, "maximum": 1000},
        "reason": {"type": "string"},
    },
}
_VOTE_BODY = {
    "type": "object",
    "properties": {"reason": {"type": "string"},
                   "confirm": {"type": "string", "description": "the item's confirm_phrase"}},
}

_DECISION_BODY = {
    "type": "object",
    "required": ["reason"],
    "properties": {"reason": {"type": "string", "description": "goes on the audit trail"}},
}
_RELEASE_BODY = {
    "type": "object",
    "required": ["as", "reason"],
    "properties": {"as": {"enum": ["redacted", "original"],
                          "description": "`original` is for admins only"},
                   "reason": {"type": "string"}},
}

OPENAPI: dict[str, object] = {
    "openapi": "3.1.0",
    "info": {"title": "Gatehouse admin API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {
            "type": "object",
            "properties": {"error": {"type": "object", "required": ["type", "message"],
                                     "properties": {"type": {"type": "string"},
                                                    "message": {"type": "string"}}}}}},
    },
    "paths": {
        "/healthz": {"get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition"}}}},
        "/v1/openapi.json": {"get": {"summary": "this document",
                                     "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/v1/whoami": {"get": _op("the caller's name and role", "any", {"200": "who", **_AUTH})},
        "/v1/halts": {
            "get": _op("halts (active only unless ?active=false)", "any",
                       {"200": "items", **_AUTH}),
            "post": _op("halt everything, an agent, a tenant, a host or an action glob",
                        "responder, admin", {"201": "the halt", **_AUTH,
                                             "422": "bad scope, target or reason"}, _HALT_BODY),
        },
        "/v1/halts/{id}": {
            "get": _op("one halt", "any", {"200": "the halt", **_AUTH, "404": "no such halt"}),
            "delete": _op("lift (resume) a halt; ?as=shadow lifts it and puts its scope in "
                          "shadow mode (the lifted halt, with `shadow`)", "responder, admin",
                          {"200": "the lifted halt", **_AUTH, "400": "bad `as`",
                           "404": "no such halt", "409": "already lifted, or a shadow"}),
        },
        "/v1/policy": {"get": _op("the running policy snapshot", "any",
                                  {"200": "snapshot", **_AUTH})},
        "/v1/policy/reload": {"post": _op(
            "reload the policy file; an invalid file keeps the running snapshot", "admin",
            {"200": "reloaded", **_AUTH, "422": "invalid policy, old snapshot kept"})},
        "/v1/policy/snapshots": {"get": _op("every snapshot that was active", "any",
                                            {"200": "items", **_AUTH})},
        "/v1/policy/snapshots/{id}": {"get": _op("one snapshot with its text", "any",
                                                 {"200": "snapshot", **_AUTH, "404": "none"})},
        "/v1/pending": {"get": _op(
            "held calls; filters state (default pending; all), route, agent, action, "
            "assigned_to (a reviewer, or `me`)",
            "reviewer, admin", {"200": "items", **_AUTH, "422": "bad state"})},
        "/v1/pending/{id}": {"get": _op(
            "one held call in full (request, reason, rollback, requirements, votes, previous "
            "decisions); the first open starts this reviewer's review clock",
            "reviewer, admin", {"200": "item", **_AUTH, "404": "no such item"})},
        "/v1/pending/{id}/approve": {"post": _op(
            "approve; re-checks the running policy and any halt", "reviewer in the routed "
            "group, admin", {"200": "item", **_AUTH, "404": "no such item",
                             "409": "decided, halted, already voted or now denied by policy",
                             "422": "friction unmet: reason, confirmation, review time",
                             "429": "cooldown: too many approvals within an hour; `until` "
                                    "says when this reviewer may approve again"},
            _VOTE_BODY)},
        "/v1/pending/{id}/deny": {"post": _op(
            "deny (final); the agent is told the reason", "reviewer in the routed group, admin",
            {"200": "item", **_AUTH, "404": "no such item", "409": "decided or already voted",
             "422": "no reason"}, _VOTE_BODY)},
        "/v1/queue/stats": {"get": _op(
            "queue health: per route and tier open items, oldest open age, median and p95 "
            "wait over the last 24 h against the policy's targets; per reviewer open assigned "
            "items, approvals in the last hour, median review time, cooldown",
            "reviewer, responder, admin", {"200": "stats", **_AUTH})},
        "/v1/grants": {
            "get": _op("standing grants (active only unless ?active=false)", "any",
                       {"200": "items", **_AUTH}),
            "post": _op("let one agent make a class of tier-1 calls for a while, a number of "
                        "times", "reviewer, admin",
                        {"201": "the grant", **_AUTH, "422": "bad grant"}, _GRANT_BODY),
        },
        "/v1/grants/{id}": {"delete": _op("revoke a grant", "reviewer, responder, admin",
                                          {"200": "the grant", **_AUTH, "404": "no such grant",
                                           "409": "already revoked"})},
        "/v1/quarantine": {"get": _op(
            "quarantined responses, oldest first; filters state (held, released, delivered, "
            "discarded), agent, limit", "any", {"200": "items", **_AUTH, "400": "bad filter"})},
        "/v1/quarantine/{id}": {"get": _op(
            "one quarantined response: findings and the redacted view; with ?original=true "
            "also the response as received (auditor, admin; each read is audited)", "any",
            {"200": "the item", **_AUTH, "404": "no such item"})},
        "/v1/quarantine/{id}/release": {"post": _op(
            "release it to the agent's next retry of the same call, once", "reviewer, "
            "responder, admin (as original: admin)",
            {"200": "the item", **_AUTH, "404": "no such item",
             "409": "already decided, or no redacted view", "422": "bad body"},
            _RELEASE_BODY)},
        "/v1/quarantine/{id}/discard": {"post": _op(
            "never deliver it", "reviewer, responder, admin",
            {"200": "the item", **_AUTH, "404": "no such item", "409": "already final",
             "422": "no reason"}, _DECISION_BODY)},
        "/v1/incidents": {
            "get": _op("incidents, newest first; ?limit", "responder, auditor, admin",
                       {"200": "items", **_AUTH, "400": "bad limit"}),
            "post": _op("open an incident on a call or a window; contained (halted) as the "
                        "policy's severity response, or `contain`, says",
                        "responder, admin",
                        {"201": "the incident", **_AUTH, "404": "no such call",
                         "422": "bad body"}, _INCIDENT_BODY),
        },
        "/v1/incidents/{id}": {"get": _op("one incident", "responder, auditor, admin",
                                          {"200": "the incident", **_AUTH,
                                           "404": "no such incident"})},
        "/v1/incidents/{id}/chain": {"get": _op(
            "the chain of the bad call: agent, policy and review layers with their evidence, "
            "failure hypotheses, timeline, rollback inventory", "responder, auditor, admin",
            {"200": "the chain", **_AUTH, "404": "no such incident"})},
        "/v1/incidents/{id}/report": {"get": _op(
            "the incident record; ?format=md (default) or json", "responder, auditor, admin",
            {"200": "the report", **_AUTH, "400": "bad format", "404": "no such incident"})},
        "/v1/evidence/{digest}": {"get": _op(
            "one evidence file by its SHA-256: a kept request or response (JSON with headers "
            "and body), or a body kept whole; each read is audited first", "auditor, admin",
            {"200": "the evidence", **_AUTH, "404": "no such evidence",
             "409": "altered on disk"})},
        "/v1/agents/{id}": {"get": _op(
            "an agent's autonomy level, since when, the promotion criteria from the audit "
            "trail and the level history", "any", {"200": "the agent", **_AUTH})},
        "/v1/agents/{id}/promote": {"post": _op(
            "sign off a promotion to the next level; refused until the criteria hold",
            "responder, admin", {"200": "the new level", **_AUTH,
                                 "409": "criteria unmet, or the highest level",
                                 "422": "no reason"}, _REASON_BODY)},
        "/v1/agents/{id}/demote": {"post": _op(
            "take the agent down one level", "responder, admin",
            {"200": "the new level", **_AUTH, "409": "the lowest level",
             "422": "no reason"}, _REASON_BODY)},
        "/v1/samples": {"get": _op(
            "calls drawn for a post-execution review; ?state=open (default) or all",
            "reviewer, auditor, admin", {"200": "items", **_AUTH, "400": "bad state"})},
        "/v1/samples/{request_id}/verdict": {"post": _op(
            "record the review of a drawn call", "reviewer, auditor, admin",
            {"200": "the item", **_AUTH, "404": "not drawn", "409": "reviewed already",
             "422": "bad verdict"},
            {"type": "object", "required": ["verdict"], "properties": {
                "verdict": {"enum": ["fine", "problem"]}, "note": {"type": "string"}}})},
        "/v1/holds/legal": {
            "get": _op("legal holds, as the audit trail records them", "auditor, responder, "
                       "admin", {"200": "items", **_AUTH}),
            "post": _op("exempt an agent's, an incident's or a time range's evidence from "
                        "retention", "auditor, admin",
                        {"201": "the hold", **_AUTH, "422": "bad hold"}, _HOLD_BODY),
        },
        "/v1/holds/legal/{id}": {"delete": _op(
            "release a legal hold", "auditor, admin",
            {"200": "the released hold", **_AUTH, "404": "no such hold",
             "409": "already released"})},
        "/v1/audit": {"get": _op(
            "audit records; filters agent, action, decision, event, since, until, after_seq, "
            "limit", "auditor, responder, admin", {"200": "items", **_AUTH, "422": "bad filter"})},
    },
}
