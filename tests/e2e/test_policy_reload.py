"""Policy reload: on file change and on request; a file that does not validate changes nothing."""

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
policy: reload-test
revision: "{revision}"
default: deny
egress:
  allow: [docs.acme.example]
actions:
  - type: http.read
    match: {{ method: GET }}
rules:
  - id: reads
    when: {{ action: http.read }}
    decision: {decision}
"""


@pytest.fixture
def gateway(tmp_path: Path, upstream: Upstream) -> Iterator[tuple[Running, Path]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(revision="1", decision="allow"))
    running = start_gateway(tmp_path, policy, upstream, agents=("bot",))
    yield running, policy
    running.gh.stop()


def read(running: Running) -> httpx.Response:
    with httpx.Client(proxy=running.proxy("bot"), timeout=10) as client:
        return client.get("http://docs.acme.example/page")


def snapshot(running: Running) -> str:
    return running.gh.admin_call("GET", "/v1/policy", running.people["admin"]).json()[
        "snapshot_id"]


def wait_for(condition: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_changed_file_is_picked_up_by_itself(gateway: tuple[Running, Path]) -> None:
    running, policy = gateway
    assert read(running).status_code == 200
    first = snapshot(running)
    policy.write_text(POLICY.format(revision="2", decision="deny"))
    wait_for(lambda: snapshot(running).startswith("2:"))
    response = read(running)
    assert response.status_code == 403 and response.json()["error"]["rule"] == "reads"
    snapshots = running.gh.admin_call("GET", "/v1/policy/snapshots",
                                      running.people["admin"]).json()["items"]
    assert [s["snapshot_id"] for s in snapshots][-2:] == [first, snapshot(running)]
    old = running.gh.admin_call("GET", f"/v1/policy/snapshots/{first}", running.people["admin"])
    assert "decision: allow" in old.json()["text"]


def test_a_broken_file_keeps_the_running_snapshot_and_says_why(
        gateway: tuple[Running, Path]) -> None:
    running, policy = gateway
    before = snapshot(running)
    policy.write_text(POLICY.format(revision="3", decision="alow"))
    response = running.gh.admin_call("POST", "/v1/policy/reload", running.people["admin"])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "policy_invalid" and error["snapshot_id"] == before
    assert "unknown decision `alow`" in error["details"]
    assert snapshot(running) == before
    assert read(running).status_code == 200
    records = running.gh.admin_call("GET", "/v1/audit?event=policy.rejected",
                                    running.people["admin"]).json()["items"]
    assert records and "alow" in records[-1]["error"]


def test_only_admins_may_reload(gateway: tuple[Running, Path]) -> None:
    running, _ = gateway
    for role in ("reviewer", "responder", "auditor"):
        response = running.gh.admin_call("POST", "/v1/policy/reload", running.people[role])
        assert response.status_code == 403


def test_the_cli_reloads(gateway: tuple[Running, Path]) -> None:
    running, policy = gateway
    policy.write_text(POLICY.format(revision="4", decision="allow"))
    result = running.gh.cli("policy", "reload", "--token", running.people["admin"])
    assert '"snapshot_id": "4:' in result.stdout
