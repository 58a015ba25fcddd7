"""Incidents through the real gateway: triggers that contain an agent on their own, and
responders opening incidents that halt as their severity requires."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import Running, serving
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: incidents
revision: "1"
egress:
  allow: [api.sendgrid.com, docs.acme.example, api.stripe.com]
actions:
  - {type: email.send, match: {method: POST, host: api.sendgrid.com}}
  - {type: docs.read, match: {host: docs.acme.example}}
  - {type: payments.refund, match: {method: POST, host: api.stripe.com}}
rules:
  - {id: reads, when: {action: [docs.read, email.send]}, decision: allow}
  - {id: no-refunds, when: {action: payments.refund}, decision: deny}
triggers:
  - {id: loop, count: repeats, at_least: 4, within: 1m}
  - {id: denial-burst, count: denials, at_least: 3, within: 1m, halt: action, severity: SEV-2}
incidents:
  severities: {SEV-2: {halt: agent}, SEV-4: {halt: none}}
"""
AGENTS = ("support-bot", "ops-bot", "loop-bot", "deny-bot", "sev4-bot")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "incidents", POLICY, agents=AGENTS) as running:
        yield running


def call(gw: Running, agent: str, method: str, url: str) -> httpx.Response:
    with gw.client(agent) as c:
        return c.request(method, url, json={"n": 1} if method == "POST" else None)


def admin(gw: Running, method: str, path: str, role: str = "responder",
          **kwargs: object) -> httpx.Response:
    return gw.gh.admin_call(method, path, gw.people[role], **kwargs)


def halted_soon(gw: Running, agent: str, method: str, url: str) -> dict[str, object]:
    """A trigger contains in the background, just after the record that fired it."""
    deadline = time.monotonic() + 10
    while (response := call(gw, agent, method, url)).status_code != 403 or \
            response.json()["error"]["type"] != "halted":
        assert time.monotonic() < deadline, f"{agent} was never halted: {response.text}"
        time.sleep(0.1)
    return response.json()["error"]


def incident_of(gw: Running, halt_id: str) -> dict[str, object]:
    items = admin(gw, "GET", "/v1/incidents").json()["items"]
    return next(i for i in items if i["halt_id"] == halt_id)


def test_an_agent_in_a_loop_is_halted_with_an_incident_naming_the_calls(gw: Running) -> None:
    url = "https://docs.acme.example/same-page"
    seen = [call(gw, "loop-bot", "GET", url) for _ in range(4)]
    assert [r.status_code for r in seen] == [200] * 4
    error = halted_soon(gw, "loop-bot", "GET", "http://docs.acme.example/another-page")
    assert "trigger `loop`: 4 repeats by `loop-bot`" in str(error["reason"])
    assert call(gw, "ops-bot", "GET", url).status_code == 200  # others go on

    incident = incident_of(gw, str(error["halt_id"]))
    request_ids = [r.headers["X-Gatehouse-Request-Id"] for r in seen]
    assert incident["evidence"] == request_ids
    assert (incident["opened_by"], incident["agent"], incident["severity"]) == (
        "trigger:loop", "loop-bot", "SEV-3")
    assert incident["contained_at"] is not None
    fired = gw.wait_for_audit("trigger.fired", trigger="loop", agent="loop-bot")
    assert (fired["evidence"], fired["incident_id"], fired["halt_id"]) == (
        request_ids, incident["id"], error["halt_id"])
    metrics = gw.gh.admin_call("GET", "/metrics", gw.people["admin"]).text
    assert 'gatehouse_triggers_fired_total{trigger="loop"} 1.0' in metrics


def test_a_denial_burst_halts_the_action_type_for_every_agent(gw: Running) -> None:
    refund = "https://api.stripe.com/v1/refunds"
    assert [call(gw, "deny-bot", "POST", refund).status_code for _ in range(3)] == [403] * 3
    error = halted_soon(gw, "support-bot", "POST", refund)
    assert "trigger `denial-burst`" in str(error["reason"])
    assert call(gw, "deny-bot", "GET", "https://docs.acme.example/x").status_code == 200
    halt = admin(gw, "GET", f"/v1/halts/{error['halt_id']}").json()
    assert (halt["scope"], halt["target"], halt["actor"]) == (
        "action", "payments.refund", "trigger:denial-burst")
    assert incident_of(gw, halt["id"])["severity"] == "SEV-2"
    admin(gw, "DELETE", f"/v1/halts/{halt['id']}")


def test_a_responder_opens_an_incident_on_the_bad_call_and_its_severity_halts_the_agent(
        gw: Running) -> None:
    sent = call(gw, "support-bot", "POST", "https://api.sendgrid.com/v3/mail/send")
    assert sent.status_code == 200
    opened = admin(gw, "POST", "/v1/incidents", json={
        "title": "misleading billing email", "severity": "SEV-1",
        "request_id": sent.headers["X-Gatehouse-Request-Id"]})
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert incident["id"].startswith("INC-")
    assert (incident["agent"], incident["opened_by"]) == ("support-bot", "responder-person")
    assert incident["halt_id"] and incident["contained_at"]

    refused = call(gw, "support-bot", "GET", "http://docs.acme.example/a")
    assert refused.status_code == 403
    assert refused.json()["error"]["halt_id"] == incident["halt_id"]
    assert f"incident {incident['id']}" in refused.json()["error"]["reason"]
    assert admin(gw, "GET", f"/v1/incidents/{incident['id']}", "auditor").json() == incident
    gw.wait_for_audit("incident.opened", incident_id=incident["id"])
    metrics = gw.gh.admin_call("GET", "/metrics", gw.people["admin"]).text
    assert 'gatehouse_incident_containment_seconds_count{severity="SEV-1"} 1.0' in metrics
    admin(gw, "DELETE", f"/v1/halts/{incident['halt_id']}")


def test_a_low_severity_halts_nothing_unless_asked_to_contain(gw: Running) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    quiet = admin(gw, "POST", "/v1/incidents", json={
        "title": "odd reads", "severity": "SEV-4", "since": since, "agent": "sev4-bot"})
    assert quiet.status_code == 201 and quiet.json()["halt_id"] is None
    assert call(gw, "sev4-bot", "GET", "http://docs.acme.example/a").status_code == 200

    contained = admin(gw, "POST", "/v1/incidents", json={
        "title": "odd reads, again", "severity": "SEV-4", "since": since, "agent": "sev4-bot",
        "contain": True})
    assert contained.status_code == 201 and contained.json()["halt_id"]
    assert call(gw, "sev4-bot", "GET", "http://docs.acme.example/a").status_code == 403
    admin(gw, "DELETE", f"/v1/halts/{contained.json()['halt_id']}")


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"title": "x", "severity": "SEV-2", "request_id": "req_nope"}, 404, "no call with"),
    ({"title": "x", "severity": "SEV-9", "request_id": "req_nope"}, 422, "unknown severity"),
    ({"title": "x", "severity": "SEV-3"}, 422, "name the bad call"),
    ({"title": "x", "severity": "SEV-3", "since": "yesterday"}, 422, "time with its zone"),
    ({"title": " ", "severity": "SEV-3", "since": "2026-01-01T00:00:00Z"}, 422, "needs a"),
    ({"title": "x", "severity": "SEV-1", "since": "2026-01-01T00:00:00Z"}, 422,
     "none is known"),
    ({"title": 5, "severity": "SEV-3"}, 422, "are strings"),
])
def test_a_bad_incident_request_says_what_is_wrong(gw: Running, body: dict[str, object],
                                                   status: int, words: str) -> None:
    response = admin(gw, "POST", "/v1/incidents", json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_only_responders_open_incidents(gw: Running) -> None:
    response = admin(gw, "POST", "/v1/incidents", "reviewer",
                     json={"title": "x", "severity": "SEV-3", "since": "2026-01-01T00:00:00Z"})
    assert response.status_code == 403


def test_the_cli_opens_and_shows_an_incident(gw: Running) -> None:
    sent = call(gw, "ops-bot", "GET", "http://docs.acme.example/cli")
    env = {"GATEHOUSE_TOKEN": gw.people["responder"]}
    opened = json.loads(gw.gh.cli(
        "incident", "open", "--title", "wrong page read", "--severity", "SEV-3",
        "--request-id", sent.headers["X-Gatehouse-Request-Id"], env=env).stdout)
    assert opened["agent"] == "ops-bot" and opened["halt_id"] is None
    shown = json.loads(gw.gh.cli("incident", "show", opened["id"], env=env).stdout)
    assert shown == opened
