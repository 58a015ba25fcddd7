"""The reference policy (`policies/examples/acme.yaml`) through the real gateway.

Every rule, driven by real clients (httpx here; requests and curl with nothing but the
variables `gatehouse env` prints), against a real HTTPS upstream on 127.0.0.1 that the
hostnames are pinned to with --connect-to.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.e2e.conftest import Running
from tests.e2e.upstream import Upstream


def client(acme: Running, agent: str = "support-bot") -> httpx.Client:
    trust = ssl.create_default_context(cafile=acme.gh.ca_bundle)
    return httpx.Client(proxy=acme.proxy(agent), verify=trust, timeout=15)


# (method, url, body kwargs, status, error type or None, rule)
CASES = [
    ("GET", "https://api.github.com/repos/acme/app", {}, 200, None, "reads"),
    ("POST", "https://api.github.com/repos/acme/app/issues", {"json": {"title": "t"}},
     503, "approval_pending", "github-writes"),
    ("DELETE", "https://api.github.com/repos/acme/app", {}, 503, "approval_pending",
     "github-writes"),
    ("POST", "https://api.stripe.com/v1/refunds", {"data": {"amount": "5000"}},
     200, None, "small-refunds"),
    ("POST", "https://api.stripe.com/v1/refunds", {"data": {"amount": "10000"}},
     503, "approval_pending", "refunds-need-finance"),
    ("POST", "https://api.stripe.com/v1/refunds", {"data": {"amount": "250000"}},
     503, "approval_pending", "refunds-need-finance"),
    ("POST", "https://api.sendgrid.com/v3/mail/send",
     {"json": {"personalizations": [{"to": [{"email": "ceo@competitor.example"}]}]}},
     403, "denied", "no-email-to-competitors"),
    ("POST", "https://api.sendgrid.com/v3/mail/send",
     {"json": {"personalizations": [{"to": [{"email": "customer@example.com"}]}]}},
     503, "approval_pending", "outbound-email"),
    ("POST", "https://api.openai.com/v1/chat/completions",
     {"json": {"model": "gpt-x", "messages": []}}, 200, None, "model-calls"),
    ("GET", "https://hooks.slack.com/services/T000", {}, 200, None, "reads"),
    ("GET", "https://docs.acme.example/runbook", {}, 200, None, "reads"),
    ("POST", "https://docs.acme.example/runbook", {"content": b"x"}, 403, "denied", None),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "error", "rule"), CASES)
def test_every_rule_of_the_reference_policy(acme: Running, upstream: Upstream, method: str,
                                            url: str, body: dict[str, object], status: int,
                                            error: str | None, rule: str | None) -> None:
    url = f"{url}?probe={uuid.uuid4().hex}"
    with client(acme) as c:
        response = c.request(method, url, **body)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["X-Gatehouse-Request-Id"].startswith("req_")
    forwarded = [r for r in upstream.received if url.split("?")[1] in str(r["query"])]
    if error is None:
        assert response.headers["X-Gatehouse-Decision"] in ("allow", "allow_with_constraints")
        assert len(forwarded) == 1
        assert "Proxy-Authorization" not in forwarded[0]["headers"]  # type: ignore[operator]
    else:
        assert forwarded == []
        payload = response.json()["error"]
        assert payload["type"] == error
        assert payload["request_id"] == response.headers["X-Gatehouse-Request-Id"]
        if error == "denied":
            assert payload["rule"] == rule
    record = acme.gh.admin_call(
        "GET", "/v1/audit?event=call.decided&limit=1000", acme.people["auditor"]).json()["items"]
    mine = [r for r in record if r["request_id"] == response.headers["X-Gatehouse-Request-Id"]]
    assert len(mine) == 1
    assert mine[0]["rule_ids"] == ([rule] if rule else [])
    assert mine[0]["snapshot_id"].startswith("4.2.1:")


@pytest.mark.parametrize("url", [
    "https://slack.com/api",  # `*.slack.com` covers subdomains, not slack.com itself
    "https://api.stripe.com:8443/v1/refunds",  # api.stripe.com is allowed on 443 only
    "https://unlisted.example/",
])
def test_destinations_outside_the_allowlist_are_refused_at_connect(
        acme: Running, upstream: Upstream, url: str) -> None:
    before = len(upstream.received)
    with client(acme) as c, pytest.raises(httpx.ProxyError, match="403"):
        c.get(url)
    assert len(upstream.received) == before


def test_plain_http_outside_the_allowlist_gets_the_json_refusal(acme: Running) -> None:
    with client(acme) as c:
        response = c.get("http://unlisted.example/")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "denied" and error["rule"] == "egress"
    assert "unlisted.example" in error["reason"]


def test_a_constrained_allow_carries_its_timeout_into_the_audit_record(acme: Running) -> None:
    with client(acme) as c:
        response = c.post("https://api.stripe.com/v1/refunds", data={"amount": "42"})
    assert response.headers["X-Gatehouse-Decision"] == "allow_with_constraints"
    records = acme.gh.admin_call("GET", "/v1/audit?event=call.decided&limit=1000",
                                 acme.people["auditor"]).json()["items"]
    [record] = [r for r in records
                if r["request_id"] == response.headers["X-Gatehouse-Request-Id"]]
    assert record["rule_ids"] == ["small-refunds"]
    assert record["constraints"] == {"timeout_seconds": 30}


def agent_environment(acme: Running, agent: str) -> dict[str, str]:
    """Exactly what `gatehouse env` prints, as the environment of an unchanged agent."""
    out = acme.gh.cli("env", "--state", str(acme.gh.state),
                      "--proxy", f"127.0.0.1:{acme.gh.proxy_port}",
                      "--agent", agent, "--agent-token", acme.agents[agent]).stdout
    env = {"PATH": "/usr/bin:/bin"}
    for line in out.splitlines():
        if line.startswith("export "):
            for assignment in line.removeprefix("export ").split():
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


AGENT_SCRIPT = """
import requests
r = requests.get("https://api.github.com/repos/acme/app")
print(r.status_code, r.headers["X-Gatehouse-Decision"])
r = requests.post("https://api.sendgrid.com/v3/mail/send",
                  json={"personalizations": [{"to": [{"email": "x@competitor.example"}]}]})
print(r.status_code, r.json()["error"]["rule"])
"""


def test_an_unchanged_requests_agent_works_with_only_the_env_variables(acme: Running) -> None:
    env = agent_environment(acme, "support-bot")
    result = subprocess.run([sys.executable, "-c", AGENT_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.split("\n")[:2] == ["200 allow", "403 no-email-to-competitors"], \
        result.stderr


def test_curl_with_only_the_env_variables(acme: Running) -> None:
    env = agent_environment(acme, "ops-bot")
    allowed = subprocess.run(["curl", "-sS", "https://docs.acme.example/x"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert allowed.returncode == 0 and '"host": "docs.acme.example"' in allowed.stdout
    denied = subprocess.run(
        ["curl", "-sS", "-X", "POST", "https://api.github.com/repos/acme/app/issues"],
        env=env, capture_output=True, text=True, timeout=30)
    assert '"type":"approval_pending"' in denied.stdout


def test_responses_are_redacted_quarantined_or_skipped_as_the_policy_says(acme: Running) -> None:
    """`responses:` of the reference policy: e-mail, phone and names replaced in place; an SSN
    holds the whole response; model calls (`llm.call`) are not scanned. The upstream echoes the
    request, so what the agent sends comes back in the response."""
    with client(acme) as c:
        redacted = c.get("https://api.github.com/repos/acme/app",
                         params={"owner": "jane.doe@example.com"})
        held = c.get("https://api.github.com/repos/acme/app", params={"ssn": "536-22-8726"})
        model = c.post("https://api.openai.com/v1/chat/completions",
                       json={"model": "gpt-x", "messages": [{"content": "ssn 536-22-8726"}]})
    assert redacted.status_code == 200
    assert "jane.doe" not in redacted.text
    assert redacted.json()["query"].endswith("<EMAIL_ADDRESS>")
    assert redacted.headers["X-Gatehouse-Response"] == "redacted"
    assert held.status_code == 502
    assert held.json()["error"]["type"] == "quarantined"
    assert "536-22-8726" not in held.text
    assert model.status_code == 200
    assert "536-22-8726" in model.json()["body"]
