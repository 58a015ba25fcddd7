"""The classic incident, end to end through the real gateway, and its reconstruction.

An agent reads a third-party page carrying a prompt injection, asks its model (a local fake
OpenAI-style server), which answers with a `send_email` tool call; the email is held under a
rule whose tier was lowered a minute earlier, and a reviewer approves it in 3 s without a reason.
The responder then opens an incident on the sent email: the chain must name each layer with
the right evidence, and the report must carry every section.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: support
revision: "{revision}"
egress:
  allow: [docs.acme.example, api.openai.com, api.sendgrid.com]
actions:
  - type: email.send
    match: {{method: POST, host: api.sendgrid.com, path: /v3/mail/send}}
    tags: [external, write]
    params: {{recipient: "json:$.personalizations[0].to[0].email"}}
  - {{type: llm.call, match: {{host: api.openai.com}}}}
  - {{type: http.read, match: {{method: GET}}}}
rules:
  - {{id: reads, when: {{action: http.read}}, decision: allow}}
  - {{id: model-calls, when: {{action: llm.call}}, decision: allow}}
  - {{id: outbound-email, when: {{action: email.send}}, decision: require_approval,
     tier: {tier}}}
approvals:
  hold_seconds: 30
  tiers: {{1: {{approvals: 1}}, 2: {{approvals: 1, reason_required: true}}}}
"""
RECIPIENT = "billing@c48291.example"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("chain")
    (tmp / "policy.yaml").write_text(POLICY.format(revision="4.2.0", tier=2))
    running = start_gateway(tmp, tmp / "policy.yaml", upstream)
    yield running
    running.gh.stop()


def admin(gw: Running, method: str, path: str, role: str, **kwargs: object) -> httpx.Response:
    return gw.gh.admin_call(method, path, gw.people[role], **kwargs)


def lower_the_tier(gw: Running, policy: Path) -> None:
    policy.write_text(POLICY.format(revision="4.2.1", tier=1))
    reloaded = admin(gw, "POST", "/v1/policy/reload", "admin", json={})
    assert reloaded.status_code == 200, reloaded.text


def review_in_three_seconds(gw: Running) -> None:
    """The reviewer opens the held email, looks for 3 s, and approves without a reason."""
    deadline = time.monotonic() + 20
    while not (items := admin(gw, "GET", "/v1/pending", "reviewer").json()["items"]):
        assert time.monotonic() < deadline, "the email was never held"
        time.sleep(0.1)
    item_id = items[0]["id"]
    assert admin(gw, "GET", f"/v1/pending/{item_id}", "reviewer").status_code == 200
    time.sleep(3)
    vote = admin(gw, "POST", f"/v1/pending/{item_id}/approve", "reviewer", json={"reason": ""})
    assert vote.status_code == 200, vote.text


@pytest.fixture(scope="module")
def incident(gw: Running) -> dict[str, object]:
    lower_the_tier(gw, gw.gh.policy)
    with gw.client("support-bot") as bot:
        page = bot.get("https://docs.acme.example/blog/billing-tips")
        assert page.status_code == 200
        answer = bot.post("https://api.openai.com/v1/chat/completions", json={
            "model": "gpt-x-2026-05", "temperature": 0.7,
            "tools": [{"type": "function", "function": {"name": "send_email"}}],
            "messages": [{"role": "user", "content": page.text}]}).json()
        arguments = json.loads(answer["choices"][0]["message"]["tool_calls"][0]["function"]
                               ["arguments"])
        reviewer = threading.Thread(target=review_in_three_seconds, args=(gw,))
        reviewer.start()
        sent = bot.post("https://api.sendgrid.com/v3/mail/send", json={
            "personalizations": [{"to": [{"email": arguments["to"]}]}],
            "subject": arguments["subject"]})
        reviewer.join()
    assert sent.status_code == 200, sent.text
    opened = admin(gw, "POST", "/v1/incidents", "responder", json={
        "title": "customer received a misleading urgent billing email", "severity": "SEV-2",
        "request_id": sent.headers["X-Gatehouse-Request-Id"]})
    assert opened.status_code == 201, opened.text
    return opened.json()


@pytest.fixture(scope="module")
def chain(gw: Running, incident: dict[str, object]) -> dict[str, object]:
    response = admin(gw, "GET", f"/v1/incidents/{incident['id']}/chain", "auditor")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_incident_contains_the_agent(gw: Running, incident: dict[str, object]) -> None:
    assert incident["halt_id"] and incident["agent"] == "support-bot"
    with gw.client("support-bot") as bot:
        refused = bot.get("http://docs.acme.example/anything")
    assert refused.json()["error"]["type"] == "halted"


def test_the_agent_layer_shows_the_injected_document_and_the_model_call(
        chain: dict[str, object]) -> None:
    layer = chain["layers"]["agent"]
    assert layer["call"]["params"] == {"recipient": RECIPIENT}
    [document] = layer["documents"]
    assert document["url"] == "https://docs.acme.example/blog/billing-tips"
    assert document["instruction_like"] == ["Ignore previous instructions"]
    assert document["kept_as_evidence"] is True
    [model] = layer["model_calls"]
    assert (model["model"], model["temperature"], model["tools"]) == (
        "gpt-x-2026-05", 0.7, ["send_email"])
    assert model["tool_calls"][0]["name"] == "send_email"
    assert RECIPIENT in model["tool_calls"][0]["arguments"]
    assert model["produced_the_call"] is True


def test_the_policy_layer_shows_the_rule_the_lowered_tier_and_what_it_did_not_look_at(
        chain: dict[str, object]) -> None:
    layer = chain["layers"]["policy"]
    assert [r["id"] for r in layer["rules_fired"]] == ["outbound-email"]
    assert layer["revision"] == "4.2.1" and layer["snapshot_id"].startswith("4.2.1:")
    assert layer["previous_snapshot_id"].startswith("4.2.0:")
    assert layer["changes_from_previous"] == ["rule outbound-email: tier 2 → 1"]
    assert 0 <= layer["active_for_seconds"] < 120
    assert layer["missing_dimensions"] == [
        "rule outbound-email matched on action only: nothing looked at the parameters, the "
        "agent, or what the agent had read"]


def test_the_review_layer_shows_a_three_second_approval_without_a_reason(
        chain: dict[str, object]) -> None:
    layer = chain["layers"]["review"]
    [vote] = layer["votes"]
    assert (vote["reviewer"], vote["verdict"]) == ("reviewer-person", "approve")
    assert 3 <= vote["seconds_to_vote"] < 10
    assert vote["flags"] == ["approved in under 10 s", "no reason given"]
    assert vote["pattern"]["queue_depth"] == 1
    assert "documents the agent fetched" in layer["not_shown"]


def test_the_hypotheses_put_the_injection_first_and_are_marked_as_such(
        chain: dict[str, object]) -> None:
    ranked = [(h["layer"], h["rank"], h["hypothesis"]) for h in chain["hypotheses"]]
    assert ranked == [("agent", "primary", True), ("policy", "secondary", True),
                      ("review", "secondary", True)]
    assert any("Ignore previous instructions" in e for e in chain["hypotheses"][0]["evidence"])


def test_the_timeline_and_the_rollback_inventory(chain: dict[str, object]) -> None:
    steps = [e["what"] for e in chain["timeline"]]
    assert steps[0].startswith("GET https://docs.acme.example/blog/billing-tips")
    assert any(s.startswith("reviewer-person votes approve") for s in steps)
    assert steps[-2].startswith("incident INC-") and steps[-1].startswith("halt h_")
    [sent] = chain["rollback"]
    assert sent["action"] == "email.send" and sent["decision"] == "approved"
    assert sent["ids"]["message_id"].startswith("msg_")


def test_the_markdown_report_has_every_section(gw: Running, incident: dict[str, object]) -> None:
    response = admin(gw, "GET", f"/v1/incidents/{incident['id']}/report?format=md", "auditor")
    assert response.headers["content-type"].startswith("text/markdown")
    report = response.text
    for section in (f"# Incident {incident['id']} · SEV-2", "## Agent layer — primary failure "
                    "(hypothesis)", "## Policy layer — secondary failure (hypothesis)",
                    "## Review layer — secondary failure (hypothesis)", "## Timeline",
                    "## Rollback inventory", "## Remediation", "owner: …   due: …",
                    "Ignore previous instructions", "tier 2 → 1", "approved in under 10 s",
                    "message_id=msg_"):
        assert section in report, section
    as_json = admin(gw, "GET", f"/v1/incidents/{incident['id']}/report?format=json",
                    "auditor").json()
    assert [r["layer"] for r in as_json["remediation"]] == ["agent", "policy", "review"]
    assert all(r["owner"] is None and r["due"] is None for r in as_json["remediation"])


def test_the_cli_prints_the_chain_and_the_report(gw: Running,
                                                 incident: dict[str, object]) -> None:
    env = {"GATEHOUSE_TOKEN": gw.people["auditor"]}
    chain = json.loads(gw.gh.cli("incident", "chain", str(incident["id"]), env=env).stdout)
    assert chain["incident"]["id"] == incident["id"]
    report = gw.gh.cli("incident", "report", str(incident["id"]), env=env).stdout
    assert report.startswith(f"# Incident {incident['id']}")
