"""Fixtures for end-to-end tests: a real upstream, and real gateways in front of it."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gatehouse import Gatehouse
from tests.e2e.upstream import Upstream

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "policies" / "examples" / "acme.yaml"


@dataclass
class Running:
    """A started gateway with one token per agent and per admin role."""

    gh: Gatehouse
    agents: dict[str, str]
    people: dict[str, str]

    def proxy(self, agent: str) -> str:
        return self.gh.proxy_url(agent, self.agents[agent])

    def client(self, agent: str, timeout: float = 30) -> httpx.Client:
        """An httpx client of `agent`, through this gateway, trusting its CA."""
        trust = ssl.create_default_context(cafile=self.gh.ca_bundle)
        return httpx.Client(proxy=self.proxy(agent), verify=trust, timeout=timeout)

    def audit(self, event: str) -> list[dict[str, object]]:
        """The audit records of `event`, read through the admin API as the auditor."""
        return self.gh.admin_call("GET", f"/v1/audit?event={event}&limit=1000",
                                  self.people["auditor"]).json()["items"]

    def wait_for_audit(self, event: str, seconds: float = 15,
                       **fields: object) -> dict[str, object]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for record in self.audit(event):
                if all(record.get(k) == v for k, v in fields.items()):
                    return record
            time.sleep(0.1)
        raise AssertionError(f"no `{event}` record with {fields}")


def start_gateway(tmp: Path, policy: Path, upstream: Upstream,
                  agents: tuple[str, ...] = ("support-bot", "ops-bot"),
                  extra: list[str] | Callable[[Gatehouse], list[str]] | None = None
                  ) -> Running:
    """`extra` flags may depend on the gateway's own ports: pass a function of it."""
    gh = Gatehouse(tmp / "state", policy, upstream)
    gh.extra = extra(gh) if callable(extra) else extra or []
    roles = ("reviewer", "responder", "auditor", "admin")
    wanted = [("--agent", name) for name in agents] + [
        ("--reviewer", f"{role}-person", "--role", role) for role in roles]
    with ThreadPoolExecutor(4) as pool:  # each `gatehouse token create` is its own process
        tokens = list(pool.map(lambda args: gh.token(*args), wanted))
    agent_tokens = dict(zip(agents, tokens, strict=False))
    people = dict(zip(roles, tokens[len(agents):], strict=True))
    gh.start()
    return Running(gh, agent_tokens, people)


@contextmanager
def serving(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, name: str,
            policy: str, **options: Any) -> Iterator[Running]:
    """A gateway on `policy` (text) for the length of the block; `options` go to
    `start_gateway` (agents, extra flags)."""
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "policy.yaml").write_text(policy)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, **options)
    try:
        yield running
    finally:
        running.gh.stop()


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    """The reference policy with `hold_seconds: 0`: every rule as written, but a held call
    answers 503 at once rather than after 30 s (holding is tested in test_approvals)."""
    tmp = tmp_path_factory.mktemp("acme")
    text = ACME.read_text()
    assert "hold_seconds: 30" in text
    (tmp / "acme.yaml").write_text(text.replace("hold_seconds: 30", "hold_seconds: 0", 1))
    running = start_gateway(tmp, tmp / "acme.yaml", upstream)
    yield running
    running.gh.stop()
