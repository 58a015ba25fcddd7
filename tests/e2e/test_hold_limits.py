"""What holding may cost: bodies and queue length per agent are bounded, approvals lapse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from addons.hold import HELD_BODY_LIMIT, MAX_OPEN_PER_AGENT
from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: hold-limits
revision: "1"
default: deny
egress:
  allow: [api.github.com]
actions:
  - type: github.write
    match: { method: [POST, PUT], host: api.github.com }
rules:
  - id: github-writes
    when: { action: github.write }
    decision: require_approval
approvals:
  hold_seconds: 0
  expire_after: 3s
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("hold-limits")
    (tmp / "policy.yaml").write_text(POLICY)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("flooder", "patient"))
    running.people["dave"] = running.gh.token("--reviewer", "dave", "--role", "reviewer")
    yield running
    running.gh.stop()


def test_a_held_call_carries_a_bounded_body(gateway: Running) -> None:
    with httpx.Client(proxy=gateway.proxy("patient"), timeout=15) as agent:
        response = agent.post("http://api.github.com/big", content=b"x" * (HELD_BODY_LIMIT + 1))
    assert response.status_code == 403
    assert "at most" in response.json()["error"]["reason"]


def test_one_agent_cannot_flood_the_review_queue(gateway: Running) -> None:
    with httpx.Client(proxy=gateway.proxy("flooder"), timeout=15) as agent:
        held = [agent.put(f"http://api.github.com/flood/{n}")
                for n in range(MAX_OPEN_PER_AGENT)]
        assert {r.json()["error"]["type"] for r in held} == {"approval_pending"}
        refused = agent.put("http://api.github.com/flood/one-more")
        again = agent.put("http://api.github.com/flood/0")  # a retry still reaches its item
    assert refused.status_code == 403 and "awaiting review" in refused.json()["error"]["reason"]
    assert again.json()["error"]["type"] == "approval_pending"
    with httpx.Client(proxy=gateway.proxy("patient"), timeout=15) as other:
        assert other.put("http://api.github.com/flood/x").json()["error"]["type"] == \
            "approval_pending"  # the limit is per agent


def test_an_approval_not_used_before_expiry_lapses(gateway: Running,
                                                   upstream: Upstream) -> None:
    with httpx.Client(proxy=gateway.proxy("patient"), timeout=15) as agent:
        item_id = agent.post("http://api.github.com/lapse").json()["error"]["pending_id"]
        approved = gateway.gh.admin_call("POST", f"/v1/pending/{item_id}/approve",
                                         gateway.people["dave"], json={})
        assert approved.status_code == 200
        time.sleep(3.2)
        late = agent.post("http://api.github.com/lapse")
    assert late.status_code == 403
    assert late.json()["error"]["type"] == "approval_expired"
    assert upstream.requests_to("/lapse") == []
