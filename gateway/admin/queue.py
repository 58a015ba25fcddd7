"""Queue health: how long held calls wait against the policy's targets, and each reviewer's
load and cooldown (`gateway.approvals.stats` says how each number is worked out)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import json_response
from gateway.admin.keys import SERVICES
from gateway.approvals.service import TIMEOUT_REVIEWER
from gateway.approvals.stats import WINDOW, reviewer_stats, route_stats, settings_json
from gateway.clock import iso, utc_now
from gateway.tokens import Role


async def queue_stats(request: web.Request) -> web.Response:
    principal(request, Role.REVIEWER, Role.RESPONDER)
    approvals = request.app[SERVICES].approvals
    settings, now = approvals.settings, utc_now()
    since = iso(now - WINDOW)
    entries = approvals.store.queue_entries(since)
    votes = [v for v in approvals.store.votes_since(since) if v.reviewer != TIMEOUT_REVIEWER]
    reviewers = {name for members in settings.groups.values() for name in members}
    reviewers |= {v.reviewer for v in votes}
    return json_response({
        "at": iso(now), "window_seconds": WINDOW.total_seconds(),
        "settings": settings_json(settings.queue),
        "routes": route_stats(entries, settings.queue, now),
        "reviewers": reviewer_stats(reviewers, entries, votes,
                                    lambda name: approvals.cooling_until(name, now), now),
    })
