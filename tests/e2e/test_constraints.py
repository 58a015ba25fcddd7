"""allow_with_constraints: the call goes out, but only under the rule's limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: constraints-test
revision: "1"
default: deny
egress:
  allow: [api.github.com]
actions:
  - type: reports.build
    match: { method: GET, host: api.github.com, path: /slow }
rules:
  - id: slow-reports
    when: { action: reports.build }
    decision: allow_with_constraints
    constraints: { timeout_seconds: 1 }
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("constraints")
    (tmp / "policy.yaml").write_text(POLICY)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("bot",))
    yield running
    running.gh.stop()


def test_a_call_within_its_timeout_passes(gateway: Running) -> None:
    with httpx.Client(proxy=gateway.proxy("bot"), timeout=10) as client:
        response = client.get("http://api.github.com/slow", params={"seconds": "0.1"})
    assert response.status_code == 200
    assert response.headers["X-Gatehouse-Decision"] == "allow_with_constraints"


def test_a_call_past_its_timeout_is_cut_and_recorded(gateway: Running) -> None:
    started = time.monotonic()
    with httpx.Client(proxy=gateway.proxy("bot"), timeout=10) as client:
        response = client.get("http://api.github.com/slow", params={"seconds": "5"})
    assert time.monotonic() - started < 3
    assert response.status_code == 502, response.text
    failed = gateway.gh.admin_call("GET", "/v1/audit?event=call.failed",
                                   gateway.people["auditor"]).json()["items"]
    assert failed and failed[-1]["action"] == "reports.build"
