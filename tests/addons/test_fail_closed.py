"""Fail closed: a fault in any stage refuses the call; nothing reaches the upstream.

mitmproxy logs an addon's exception and lets the flow continue. Each case here makes one stage's
collaborator raise and sends a real request through the real proxy: the agent must get 503
`gateway_error` (or, for a fault right before dialling, no connection at all), the upstream must
receive nothing, and the refusal must be in the audit trail.
"""

from __future__ import annotations

import dataclasses
import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from addons import decide, egress, identify
from gateway.audit import AuditError, AuditLog
from gateway.egress import AddressGuard
from gateway.halts import HaltBoard
from gateway.services import Settings
from tests.addons.inprocess import InProcessGateway
from tests.e2e.gatehouse import free_port
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: fail-closed
revision: "1"
default: deny
egress:
  allow: [api.github.com]
actions:
  - type: http.read
    match: { method: GET }
rules:
  - id: reads
    when: { action: http.read }
    decision: allow
"""


def boom(*args: object, **kwargs: object) -> object:
    raise RuntimeError("injected fault")


async def boom_async(*args: object, **kwargs: object) -> object:
    raise RuntimeError("injected fault")


async def audit_refuses(*args: object, **kwargs: object) -> object:
    raise AuditError("disk full (injected)")


class BogusVerdict:
    value = "allow_perhaps"


def unknown_verdict(policy: object, call: object, now: object) -> object:
    """decide hands enforce a verdict it does not know: enforce must not treat it as allow."""
    action, decision = real_evaluate(policy, call, now)
    return action, dataclasses.replace(decision, verdict=BogusVerdict())


real_evaluate = decide.evaluate

FAULTS: dict[str, tuple[object, str, Callable[..., object]]] = {
    "identify": (identify.Identify, "_check", boom),
    "decide": (decide, "evaluate", boom),
    "halt": (HaltBoard, "match", boom),
    "enforce": (decide, "evaluate", unknown_verdict),
    "egress": (AddressGuard, "resolve", boom_async),
    "audit (append refused)": (AuditLog, "append", audit_refuses),
    "audit (internal error)": (AuditLog, "append", boom_async),
}


@pytest.fixture
def gateway_factory(tmp_path: Path, upstream: Upstream) -> Iterator[Callable[[], Settings]]:
    started: list[InProcessGateway] = []

    def start() -> Settings:
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        settings = Settings(
            policy_path=policy, state_dir=tmp_path / "state",
            listen=("127.0.0.1", free_port()), admin=("127.0.0.1", free_port()),
            connect_to={("api.github.com", 0): ("127.0.0.1", upstream.https_port)},
            upstream_ca=upstream.ca_file)
        started.append(InProcessGateway(settings).start())
        return settings

    yield start
    for gateway in started:
        gateway.stop()


def get_through(settings: Settings, path: str, scheme: str = "https") -> httpx.Response:
    proxy = f"http://{settings.listen[0]}:{settings.listen[1]}"
    trust = ssl.create_default_context(cafile=settings.state_dir / "ca-bundle.pem")
    with httpx.Client(proxy=proxy, verify=trust, timeout=10) as client:
        return client.get(f"{scheme}://api.github.com{path}")


def test_the_unfaulted_path_forwards(gateway_factory: Callable[[], Settings],
                                     upstream: Upstream) -> None:
    settings = gateway_factory()
    path = f"/ok/{uuid.uuid4().hex}"
    assert get_through(settings, path).status_code == 200
    assert len(upstream.requests_to(path)) == 1


@pytest.mark.parametrize("stage", sorted(FAULTS))
def test_a_fault_in_a_stage_refuses_the_call(stage: str, gateway_factory: Callable[[], Settings],
                                             upstream: Upstream,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings = gateway_factory()
    owner, name, fault = FAULTS[stage]
    monkeypatch.setattr(owner, name, fault)
    path = f"/fault/{uuid.uuid4().hex}"

    try:
        tunnelled = get_through(settings, path, "https").status_code
    except httpx.ProxyError as refused_tunnel:  # stages that run at CONNECT refuse the tunnel
        tunnelled = int(str(refused_tunnel).split()[0])
    assert tunnelled == 503
    response = get_through(settings, path, "http")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "gateway_error"
    assert response.headers["X-Gatehouse-Decision"] == "error"
    assert upstream.requests_to(path) == []
    monkeypatch.undo()
    if not stage.startswith("audit"):
        records = AuditLog(settings.state_dir / "audit.db").query(event="call.decided")
        refused = [r for r in records if r["request_id"] == error["request_id"]]
        assert refused and refused[0]["decision"] == "gateway_error"
        assert str(refused[0]["error"]).startswith(f"{stage}: ")  # names the stage that failed


def test_a_fault_right_before_dialling_connects_nowhere(
        gateway_factory: Callable[[], Settings], upstream: Upstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The request hook's check passes; the resolution at dial time then fails."""
    settings = gateway_factory()
    checks = []
    real_resolve = AddressGuard.resolve

    async def second_check_fails(self: AddressGuard, host: str, port: int) -> object:
        checks.append(host)
        if len(checks) > 1:
            raise RuntimeError("injected fault")
        return await real_resolve(self, host, port)

    monkeypatch.setattr(AddressGuard, "resolve", second_check_fails)
    monkeypatch.setattr(egress, "RESOLUTION_REUSE_SECONDS", -1.0)  # resolve again at the dial
    path = f"/dial/{uuid.uuid4().hex}"
    response = get_through(settings, path)
    assert response.status_code == 502
    assert upstream.requests_to(path) == []

