"""The kill switch: halts by agent, action glob and everything; immediate, durable, audited."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ACME, Running, start_gateway
from tests.e2e.upstream import Upstream


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    running = start_gateway(tmp_path_factory.mktemp("halts"), ACME, upstream)
    yield running
    running.gh.stop()


def client(gateway: Running, agent: str) -> httpx.Client:
    trust = ssl.create_default_context(cafile=gateway.gh.ca_bundle)
    return httpx.Client(proxy=gateway.proxy(agent), verify=trust, timeout=15)


def halt(gateway: Running, scope: str, target: str | None, role: str = "responder"
         ) -> httpx.Response:
    return gateway.gh.admin_call("POST", "/v1/halts", gateway.people[role],
                                 json={"scope": scope, "target": target, "reason": "drill"})


def resume(gateway: Running, halt_id: str) -> None:
    response = gateway.gh.admin_call("DELETE", f"/v1/halts/{halt_id}", gateway.people["responder"])
    assert response.status_code == 200


def test_halting_an_agent_stops_it_at_once_and_no_other(gateway: Running) -> None:
    """"At once" is the very next call, in a tunnel opened before the halt; how long that takes
    is measured by `make bench` (bench_incidents: halt latency), not asserted here."""
    with client(gateway, "support-bot") as bot, client(gateway, "ops-bot") as other:
        assert bot.get("https://docs.acme.example/a").status_code == 200  # tunnel is open
        created = halt(gateway, "agent", "support-bot")
        assert created.status_code == 201
        try:
            refused = bot.get("https://docs.acme.example/a")  # same tunnel, the very next call
            assert refused.status_code == 403
            error = refused.json()["error"]
            assert error["type"] == "halted" and error["halt_id"] == created.json()["id"]
            assert refused.headers["X-Gatehouse-Decision"] == "halted"
            assert other.get("https://docs.acme.example/a").status_code == 200
        finally:
            resume(gateway, created.json()["id"])
        assert bot.get("https://docs.acme.example/a").status_code == 200


def test_halting_an_action_glob_stops_only_those_actions(gateway: Running) -> None:
    created = halt(gateway, "action", "payments.*").json()
    try:
        with client(gateway, "support-bot") as bot:
            refund = bot.post("https://api.stripe.com/v1/refunds", data={"amount": "100"})
            assert refund.status_code == 403 and refund.json()["error"]["type"] == "halted"
            assert bot.get("https://api.github.com/repos/acme/app").status_code == 200
    finally:
        resume(gateway, created["id"])


def test_halting_everything_refuses_even_the_tunnel(gateway: Running) -> None:
    created = halt(gateway, "all", None).json()
    try:
        with client(gateway, "ops-bot") as bot:
            with pytest.raises(httpx.ProxyError, match="403"):
                bot.get("https://docs.acme.example/a")
            plain = bot.get("http://docs.acme.example/a")
            assert plain.status_code == 403 and plain.json()["error"]["type"] == "halted"
    finally:
        resume(gateway, created["id"])


@pytest.mark.parametrize(("role", "status"), [("reviewer", 403), ("auditor", 403),
                                              ("responder", 201), ("admin", 201)])
def test_only_responders_and_admins_may_halt(gateway: Running, role: str, status: int) -> None:
    response = halt(gateway, "agent", "ops-bot", role)
    assert response.status_code == status
    if status == 201:
        resume(gateway, response.json()["id"])
    else:
        assert response.json()["error"]["type"] == "forbidden"


@pytest.mark.parametrize(("body", "message"), [
    ({"scope": "galaxy", "reason": "x"}, "unknown halt scope `galaxy`"),
    ({"scope": "agent", "reason": "x"}, "needs a `target`"),
    ({"scope": "all"}, "needs a `reason`"),
])
def test_a_bad_halt_request_says_what_is_wrong(gateway: Running, body: dict[str, str],
                                               message: str) -> None:
    response = gateway.gh.admin_call("POST", "/v1/halts", gateway.people["responder"], json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(("scope", "target"), [("agent", "Support-Bot"), ("agent", "nobody"),
                                               ("tenant", "globex")])
def test_a_halt_that_would_cover_nothing_is_refused(gateway: Running, scope: str,
                                                    target: str) -> None:
    response = halt(gateway, scope, target)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert f"no {scope} `{target}` is known" in message and "known:" in message


@pytest.mark.parametrize("spelling", ["docs.acme.example.", "DOCS.Acme.Example",
                                      "[docs.acme.example]"])
def test_a_host_halt_covers_every_spelling_of_the_host(gateway: Running, spelling: str) -> None:
    created = halt(gateway, "host", spelling).json()
    try:
        assert created["target"] == "docs.acme.example"
        with client(gateway, "ops-bot") as bot:
            response = bot.get("http://docs.acme.example./x")
        assert response.status_code == 403 and response.json()["error"]["type"] == "halted"
    finally:
        resume(gateway, created["id"])


def test_resuming_twice_is_a_conflict_and_unknown_ids_are_not_found(gateway: Running) -> None:
    created = halt(gateway, "agent", "ops-bot").json()
    resume(gateway, created["id"])
    again = gateway.gh.admin_call("DELETE", f"/v1/halts/{created['id']}",
                                  gateway.people["responder"])
    assert again.status_code == 409
    unknown = gateway.gh.admin_call("DELETE", "/v1/halts/h_nope", gateway.people["responder"])
    assert unknown.status_code == 404


def test_the_cli_halts_and_resumes(gateway: Running) -> None:
    """Even from a shell that holds an agent's proxy variables (the admin API is never
    reachable through the proxy, so the CLI must not use it)."""
    gh = gateway.gh
    env_token = ["--token", gateway.people["responder"]]
    proxied = {name: gateway.proxy("ops-bot") for name in ("HTTP_PROXY", "http_proxy",
                                                           "HTTPS_PROXY", "https_proxy")}
    out = gh.cli("halt", "--agent", "support-bot", "--reason", "loop detected", *env_token,
                 env={**proxied, "NO_PROXY": "", "no_proxy": ""})
    halt_id = json.loads(out.stdout)["id"]
    with client(gateway, "support-bot") as bot:
        assert bot.get("http://docs.acme.example/a").status_code == 403
        gh.cli("resume", halt_id, *env_token)
        assert bot.get("http://docs.acme.example/a").status_code == 200
    refused = gh.cli("halt", "--all", "--reason", "x", "--token", gateway.people["reviewer"],
                     check=False)
    assert refused.returncode == 1 and "403 forbidden" in refused.stderr


def test_halts_and_resumes_are_audited(gateway: Running) -> None:
    created = halt(gateway, "tenant", "acme").json()
    resume(gateway, created["id"])
    records = gateway.gh.admin_call("GET", "/v1/audit?limit=1000",
                                    gateway.people["auditor"]).json()["items"]
    events = [(r["event"], r.get("actor")) for r in records if r.get("id") == created["id"]]
    assert events == [("halt.set", "responder-person"), ("halt.lifted", "responder-person")]


def test_a_halt_survives_a_restart(tmp_path_factory: pytest.TempPathFactory,
                                   upstream: Upstream) -> None:
    running = start_gateway(tmp_path_factory.mktemp("restart"), ACME, upstream)
    try:
        halt(running, "agent", "support-bot")
        running.gh.kill()  # no clean shutdown
        running.gh.start()
        with client(running, "support-bot") as bot:
            response = bot.get("http://docs.acme.example/a")
        assert response.status_code == 403 and response.json()["error"]["type"] == "halted"
    finally:
        running.gh.stop()
