"""A response that cannot be scanned is held, never passed: the analyzer raising, hanging past
the time budget, or the scanning stage itself failing.

The analyzer runs in worker processes, so the fault is put there: the pool is built with a judge
that fails on bodies naming a fault (tests/gateway/scan/test_pool.py). The gateway, the upstream
and the client are real.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.audit import AuditLog
from gateway.scan import pool
from gateway.services import Settings
from tests.addons.inprocess import InProcessGateway
from tests.e2e.gatehouse import free_port
from tests.e2e.upstream import Upstream
from tests.gateway.scan.test_pool import faulty_judge

POLICY = """\
version: 1
policy: scan-faults
revision: "1"
egress: {allow: [api.github.com]}
actions: [{type: http.read, match: {method: GET}}]
rules: [{id: reads, when: {action: http.read}, decision: allow}]
responses:
  detect: [EMAIL_ADDRESS]
  redact: [EMAIL_ADDRESS]
  scan_timeout_seconds: 2
"""


@pytest.fixture
def settings(tmp_path: Path, upstream: Upstream,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    real_init = pool.ScanPool.__init__
    monkeypatch.setattr(pool.ScanPool, "__init__",
                        lambda self, workers: real_init(self, workers, faulty_judge))
    (tmp_path / "policy.yaml").write_text(POLICY)
    settings = Settings(
        policy_path=tmp_path / "policy.yaml", state_dir=tmp_path / "state",
        listen=("127.0.0.1", free_port()), admin=("127.0.0.1", free_port()),
        connect_to={("api.github.com", 0): ("127.0.0.1", upstream.https_port)},
        upstream_ca=upstream.ca_file, scan_workers=1)
    gateway = InProcessGateway(settings).start()
    yield settings
    gateway.stop()


def get(settings: Settings, path: str) -> httpx.Response:
    trust = ssl.create_default_context(cafile=settings.state_dir / "ca-bundle.pem")
    proxy = f"http://{settings.listen[0]}:{settings.listen[1]}"
    with httpx.Client(proxy=proxy, verify=trust, timeout=30) as client:
        return client.get(f"https://api.github.com{path}")


@pytest.mark.parametrize("fault,note", [
    ("fault-raise", "scanner failed: RuntimeError"),
    ("fault-hang", "scan took longer than 2 s"),
])
def test_an_analyzer_fault_quarantines_the_response(settings: Settings, fault: str,
                                                    note: str) -> None:
    response = get(settings, f"/{fault}/{uuid.uuid4().hex}?to=jane.doe@example.com")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "quarantined"
    assert error["reason"] == f"it could not be scanned: {note}"
    assert "jane.doe" not in response.text
    [record] = [r for r in AuditLog(settings.state_dir / "audit.db").query(
        event="call.response") if r["quarantine_id"] == error["quarantine_id"]]
    assert (record["outcome"], record["note"]) == ("unscannable", note)


def test_the_scanner_recovers_after_a_fault(settings: Settings) -> None:
    assert get(settings, f"/fault-die/{uuid.uuid4().hex}").status_code == 502
    response = get(settings, f"/ok/{uuid.uuid4().hex}?to=jane.doe@example.com")
    assert response.status_code == 200
    assert "jane.doe@example.com" not in response.text
    assert "<EMAIL_ADDRESS>" in response.text


def test_a_fault_in_the_scanning_stage_refuses_rather_than_passes(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> object:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(pool.ScanPool, "judge", broken)
    response = get(settings, f"/ok/{uuid.uuid4().hex}?to=jane.doe@example.com")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "gateway_error"
    assert "jane.doe" not in response.text
