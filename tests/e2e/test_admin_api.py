"""The admin API's own surface: health, metrics, OpenAPI, auth and JSON errors everywhere."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Running


def test_healthz_and_metrics_are_open(acme: Running) -> None:
    health = httpx.get(f"{acme.gh.admin}/healthz")
    assert health.status_code == 200 and health.json()["policy"].startswith("4.2.1:")
    with httpx.Client(proxy=acme.proxy("ops-bot")) as c:
        c.get("http://docs.acme.example/metrics-probe")
    metrics = httpx.get(f"{acme.gh.admin}/metrics").text
    assert 'gatehouse_decisions_total{action="http.read",decision="allow",rule="reads"}' in \
        metrics
    assert "gatehouse_decision_seconds_bucket" in metrics
    assert "gatehouse_halts_active 0.0" in metrics


def test_the_openapi_document_lists_every_route(acme: Running) -> None:
    document = httpx.get(f"{acme.gh.admin}/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path in ("/v1/halts", "/v1/halts/{id}", "/v1/policy/reload", "/v1/audit"):
        assert path in document["paths"]


@pytest.mark.parametrize(("method", "path", "headers", "status", "error_type"), [
    ("GET", "/v1/halts", {}, 401, "unauthorized"),
    ("GET", "/v1/halts", {"Authorization": "Bearer ghr_wrong"}, 401, "unauthorized"),
    ("GET", "/v1/halts", {"Authorization": "Basic abc"}, 401, "unauthorized"),
    ("GET", "/v1/nothing-here", {}, 404, "not_found"),
    ("PUT", "/v1/halts", {}, 405, "method_not_allowed"),
])
def test_errors_use_the_json_error_shape(acme: Running, method: str, path: str,
                                         headers: dict[str, str], status: int,
                                         error_type: str) -> None:
    response = httpx.request(method, f"{acme.gh.admin}{path}", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type


def test_a_body_that_is_not_json_is_a_clear_error(acme: Running) -> None:
    response = acme.gh.admin_call("POST", "/v1/halts", acme.people["responder"],
                                  content=b"scope=all")
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_whoami_names_the_caller(acme: Running) -> None:
    me = acme.gh.admin_call("GET", "/v1/whoami", acme.people["auditor"]).json()
    assert me == {"name": "auditor-person", "role": "auditor"}
