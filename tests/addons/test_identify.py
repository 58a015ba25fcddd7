"""Identify in transparent mode: the client address names the agent; no address, no call."""

from __future__ import annotations

from base64 import b64encode
from pathlib import Path
from types import SimpleNamespace

import pytest
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow

from addons import meta
from addons.identify import Identify
from gateway.policy import load_policy_text
from gateway.postgres.backends import Backend
from gateway.store import StateStore
from gateway.tokens import new_token

OPS_TOKEN = new_token("agent")

POLICY = """\
version: 1
policy: sidecar
revision: "{revision}"
agents:
  support-bot: {{ tenant: acme, addresses: [10.200.0.2, "fd00::/64"] }}
  ops-bot: {{ addresses: [{ops}] }}
"""


def holder(revision: str = "1", ops: str = "10.200.1.0/24") -> SimpleNamespace:
    """What Identify reads of the policy holder: the current snapshot."""
    return SimpleNamespace(
        current=load_policy_text(POLICY.format(revision=revision, ops=ops), "sidecar.yaml"))


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = Backend("sqlite", tmp_path).state()
    store.add_token("agent", "ops-bot", None, OPS_TOKEN)
    return store


def flow_from(address: str, mode: str = "transparent",
              credentials: str | None = None) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.peername = (address, 40000)
    flow.client_conn.proxy_mode = ProxyMode.parse(mode)
    if credentials is not None:
        flow.request.headers["Proxy-Authorization"] = "Basic " + b64encode(
            credentials.encode()).decode()
    return flow


@pytest.mark.parametrize(("address", "agent"), [
    ("10.200.0.2", "support-bot"),
    ("::ffff:10.200.0.2", "support-bot"),  # IPv4 client seen on a dual-stack socket
    ("fd00::7", "support-bot"),
    ("10.200.1.77", "ops-bot"),
])
def test_a_mapped_address_is_its_agent(store: StateStore, address: str, agent: str) -> None:
    flow = flow_from(address)
    Identify(store, holder()).request(flow)  # type: ignore[arg-type]
    assert flow.response is None
    assert flow.metadata[meta.AGENT] == agent


@pytest.mark.parametrize("address", ["10.200.0.3", "127.0.0.1", "fd01::1"])
def test_an_unmapped_address_is_refused_even_with_no_tokens(tmp_path: Path,
                                                            address: str) -> None:
    flow = flow_from(address)
    Identify(Backend("sqlite", tmp_path).state(), holder()).request(flow)  # type: ignore[arg-type]
    assert flow.response is not None and flow.response.status_code == 407
    assert flow.metadata[meta.REFUSAL] == "identity_required"
    assert f"`{address}`" in flow.metadata[meta.REFUSAL_REASON]
    assert meta.AGENT not in flow.metadata


def test_credentials_sent_anyway_are_checked_and_stripped(store: StateStore) -> None:
    identify = Identify(store, holder())
    good = flow_from("10.200.0.2", credentials=f"ops-bot:{OPS_TOKEN}")
    identify.request(good)  # type: ignore[arg-type]
    assert good.metadata[meta.AGENT] == "ops-bot"
    assert "Proxy-Authorization" not in good.request.headers
    bad = flow_from("10.200.0.2", credentials=f"ops-bot:{OPS_TOKEN}x")
    identify.request(bad)  # type: ignore[arg-type]
    assert bad.response is not None and bad.response.status_code == 407


def test_regular_mode_ignores_the_address_map(store: StateStore) -> None:
    flow = flow_from("10.200.0.2", mode="regular")
    Identify(store, holder()).request(flow)  # type: ignore[arg-type]
    assert flow.response is not None and flow.response.status_code == 407


def test_a_new_snapshot_moves_an_address(store: StateStore) -> None:
    policy = holder()
    identify = Identify(store, policy)  # type: ignore[arg-type]
    policy.current = holder("2", ops="10.200.0.128/25").current
    moved, left = flow_from("10.200.0.200"), flow_from("10.200.1.77")
    identify.request(moved)
    identify.request(left)
    assert moved.metadata[meta.AGENT] == "ops-bot"
    assert left.response is not None and left.response.status_code == 407
