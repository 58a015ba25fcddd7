"""`create_app`: the admin API's routes in one list, handlers in one module per concern."""

from __future__ import annotations

from aiohttp import web

from gateway.admin import (
    agents,
    audit,
    evidence,
    grants,
    halts,
    holds,
    incidents,
    pending,
    policy,
    quarantine,
    queue,
    samples,
    system,
)
from gateway.admin.auth import STORE
from gateway.admin.errors import json_errors
from gateway.admin.keys import SERVICES
from gateway.services import Services

MAX_BODY_BYTES = 1024 * 1024


def create_app(services: Services) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[SERVICES] = services
    app[STORE] = services.store
    setup_routes(app)
    return app


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", system.healthz)
    app.router.add_get("/metrics", system.metrics)
    app.router.add_get("/v1/openapi.json", system.openapi)
    app.router.add_get("/v1/whoami", system.whoami)
    app.router.add_get("/v1/halts", halts.list_halts)
    app.router.add_post("/v1/halts", halts.set_halt)
    app.router.add_get("/v1/halts/{id}", halts.get_halt)
    app.router.add_delete("/v1/halts/{id}", halts.lift_halt)
    app.router.add_get("/v1/incidents", incidents.list_incidents)
    app.router.add_post("/v1/incidents", incidents.open_incident)
    app.router.add_get("/v1/incidents/{id}", incidents.get_incident)
    app.router.add_get("/v1/incidents/{id}/chain", incidents.get_chain)
    app.router.add_get("/v1/incidents/{id}/report", incidents.get_report)
    app.router.add_get("/v1/policy", policy.current)
    app.router.add_post("/v1/policy/reload", policy.reload)
    app.router.add_get("/v1/policy/snapshots", policy.snapshots)
    app.router.add_get("/v1/policy/snapshots/{id}", policy.snapshot)
    app.router.add_get("/v1/audit", audit.list_records)
    app.router.add_get("/v1/evidence/{digest}", evidence.get_evidence)
    app.router.add_get("/v1/agents/{id}", agents.get_agent)
    app.router.add_post("/v1/agents/{id}/promote", agents.promote)
    app.router.add_post("/v1/agents/{id}/demote", agents.demote)
    app.router.add_get("/v1/samples", samples.list_samples)
    app.router.add_post("/v1/samples/{request_id}/verdict", samples.record_verdict)
    app.router.add_get("/v1/holds/legal", holds.list_holds)
    app.router.add_post("/v1/holds/legal", holds.place_hold)
    app.router.add_delete("/v1/holds/legal/{id}", holds.release_hold)
    app.router.add_get("/v1/pending", pending.list_pending)
    app.router.add_get("/v1/pending/{id}", pending.get_pending)
    app.router.add_post("/v1/pending/{id}/approve", pending.approve)
    app.router.add_post("/v1/pending/{id}/deny", pending.deny)
    app.router.add_get("/v1/queue/stats", queue.queue_stats)
    app.router.add_get("/v1/grants", grants.list_grants)
    app.router.add_post("/v1/grants", grants.create_grant)
    app.router.add_delete("/v1/grants/{id}", grants.revoke_grant)
    app.router.add_get("/v1/quarantine", quarantine.list_quarantine)
    app.router.add_get("/v1/quarantine/{id}", quarantine.get_quarantine)
    app.router.add_post("/v1/quarantine/{id}/release", quarantine.release)
    app.router.add_post("/v1/quarantine/{id}/discard", quarantine.discard)
