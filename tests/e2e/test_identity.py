"""Identity: agents prove who they are with proxy credentials, which never leave the gateway."""

from __future__ import annotations

import ssl
import uuid

import httpx
import pytest

from tests.e2e.conftest import Running
from tests.e2e.upstream import Upstream


def proxied(acme: Running, proxy: str) -> httpx.Client:
    trust = ssl.create_default_context(cafile=acme.gh.ca_bundle)
    return httpx.Client(proxy=proxy, verify=trust, timeout=15)


@pytest.mark.parametrize("credentials", [
    "",  # none
    "support-bot:gha_not-a-real-token@",
    "ops-bot:{support-bot}@",  # another agent's token
    "admin-person:{admin}@",  # a person's admin token is not an agent credential
    "support-bot:{forged}@",  # the right token id with a wrong secret
])
def test_calls_without_valid_agent_credentials_get_407(acme: Running, upstream: Upstream,
                                                       credentials: str) -> None:
    real = acme.agents["support-bot"]
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    credentials = credentials.replace("{support-bot}", real).replace(
        "{admin}", acme.people["admin"]).replace("{forged}", forged)
    before = len(upstream.received)
    with proxied(acme, f"http://{credentials}127.0.0.1:{acme.gh.proxy_port}") as c:
        response = c.get("http://docs.acme.example/x")
    assert response.status_code == 407
    assert response.headers["Proxy-Authenticate"].startswith("Basic")
    assert response.json()["error"]["type"] == "identity_required"
    with proxied(acme, f"http://{credentials}127.0.0.1:{acme.gh.proxy_port}") as c, \
            pytest.raises(httpx.ProxyError, match="407"):
        c.get("https://docs.acme.example/x")
    assert len(upstream.received) == before


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_credentials_are_removed_before_the_call_leaves(acme: Running, upstream: Upstream,
                                                        scheme: str) -> None:
    path = f"/whoami/{uuid.uuid4().hex}"
    with proxied(acme, acme.proxy("ops-bot")) as c:
        assert c.get(f"{scheme}://docs.acme.example{path}").status_code == 200
    [seen] = upstream.requests_to(path)
    headers = {k.lower() for k in seen["headers"]}  # type: ignore[union-attr]
    assert "proxy-authorization" not in headers
    assert acme.agents["ops-bot"] not in str(seen)


def test_the_audit_record_names_the_agent(acme: Running) -> None:
    with proxied(acme, acme.proxy("ops-bot")) as c:
        response = c.get("https://docs.acme.example/who")
    request_id = response.headers["X-Gatehouse-Request-Id"]
    records = acme.gh.admin_call("GET", "/v1/audit?agent=ops-bot&limit=1000",
                                 acme.people["auditor"]).json()["items"]
    [record] = [r for r in records if r.get("request_id") == request_id]
    assert record["agent"] == "ops-bot" and record["tenant"] == "acme"


def test_agent_tokens_cannot_use_the_admin_api(acme: Running) -> None:
    response = acme.gh.admin_call("GET", "/v1/halts", acme.agents["support-bot"])
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "agent credentials cannot use the admin API"


def test_tokens_are_stored_hashed(acme: Running) -> None:
    state = (acme.gh.state / "state.db").read_bytes()
    for token in [*acme.agents.values(), *acme.people.values()]:
        assert token.encode() not in state
