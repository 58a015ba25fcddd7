"""MCP over streamable HTTP through the gateway, with the official `mcp` SDK on both sides.

The agent's code is the SDK's own client, unchanged: only HTTP_PROXY points it at Gatehouse.
Each `tools/call` becomes the action `mcp.<tool>`, decided by the reference policy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import ACME, Running, start_gateway
from tests.e2e.gatehouse import free_port
from tests.e2e.mcp_server import McpServer, start_mcp_server
from tests.e2e.upstream import Upstream

MCP_URL = "http://tools.acme.internal/mcp"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpServer]:
    server = start_mcp_server(free_port())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
            mcp_server: McpServer) -> Iterator[Running]:
    running = start_gateway(
        tmp_path_factory.mktemp("mcp"), ACME, upstream,
        extra=["--connect-to", f"tools.acme.internal:80=127.0.0.1:{mcp_server.port}"])
    yield running
    running.gh.stop()


def refusal_status(error: BaseException) -> int | None:
    """The HTTP status behind the SDK's error (it arrives wrapped in exception groups)."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (status := refusal_status(inner)) is not None:
                return status
    return refusal_status(error.__cause__) if error.__cause__ else None


async def call_tool(tool: str, arguments: dict[str, object]) -> object:
    async with streamable_http_client(MCP_URL) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await session.call_tool(tool, arguments)


@pytest.fixture
def agent_env(gateway: Running, monkeypatch: pytest.MonkeyPatch) -> Running:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, gateway.proxy("ops-bot"))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return gateway


def test_an_allowed_tool_call_passes(agent_env: Running) -> None:
    result = asyncio.run(call_tool("read_file", {"path": "/etc/motd"}))
    assert result.content[0].text == "contents of /etc/motd"  # type: ignore[attr-defined]
    record = agent_env.gh.admin_call("GET", "/v1/audit?action=mcp.read_file",
                                     agent_env.people["auditor"]).json()["items"][-1]
    assert record["decision"] == "allow" and record["rule_ids"] == ["mcp-reads"]
    assert record["params"] == {"path": "/etc/motd"}


def test_a_delete_is_held_for_two_reviewers_and_a_denial_is_final(
        agent_env: Running, mcp_server: McpServer) -> None:
    erin = agent_env.gh.token("--reviewer", "erin", "--role", "reviewer")
    with concurrent.futures.ThreadPoolExecutor() as pool:
        calling = pool.submit(asyncio.run, call_tool("delete_file", {"path": "/srv/data"}))
        item = wait_for_pending(agent_env, erin, "mcp.delete_file")
        assert item["tier"] == 3 and item["route"] == "ops-approvers"
        assert item["params"] == {"path": "/srv/data"}
        denied = agent_env.gh.admin_call("POST", f"/v1/pending/{item['id']}/deny", erin,
                                         json={"reason": "that directory is live"})
        assert denied.status_code == 200
        with pytest.raises(BaseException) as raised:
            calling.result(timeout=20)
    assert refusal_status(raised.value) == 403  # approval_denied
    assert mcp_server.deleted == []


def wait_for_pending(running: Running, token: str, action: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for item in running.gh.admin_call("GET", f"/v1/pending?action={action}",
                                          token).json()["items"]:
            return item
        time.sleep(0.1)
    raise AssertionError(f"no {action} was held")


def test_a_tool_no_rule_allows_is_denied_by_default(agent_env: Running) -> None:
    with pytest.raises(BaseException) as raised:
        asyncio.run(call_tool("write_file", {"path": "/srv/x", "text": "hi"}))
    assert refusal_status(raised.value) == 403
    record = agent_env.gh.admin_call("GET", "/v1/audit?action=mcp.write_file",
                                     agent_env.people["auditor"]).json()["items"][-1]
    assert record["decision"] == "denied" and record["rule_ids"] == []


HELD_POLICY = """\
version: 1
policy: mcp-held
revision: "1"
default: deny
egress:
  allow: [tools.acme.internal]
actions:
  - type: "mcp.{tool}"
    match: { host: tools.acme.internal, path: /mcp, mcp: tools/call }
    params: { path: "mcp:arguments.path" }
rules:
  - id: deletes
    when: { action: "mcp.delete_*" }
    decision: require_approval
    tier: 1
    route: ops
    reason: Deleting files is reviewed
approvals:
  hold_seconds: 20
  tiers: { 1: { approvals: 1 } }
  groups: { ops: [dave] }
"""


def test_a_tool_call_is_held_until_a_reviewer_releases_it(
        tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, mcp_server: McpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path_factory.mktemp("mcp-held")
    (tmp / "policy.yaml").write_text(HELD_POLICY)
    running = start_gateway(
        tmp, tmp / "policy.yaml", upstream, agents=("ops-bot",),
        extra=["--connect-to", f"tools.acme.internal:80=127.0.0.1:{mcp_server.port}"])
    try:
        dave = running.gh.token("--reviewer", "dave", "--role", "reviewer")
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, running.proxy("ops-bot"))
        with concurrent.futures.ThreadPoolExecutor() as pool:
            calling = pool.submit(asyncio.run, call_tool("delete_file", {"path": "/srv/old"}))
            item = wait_for_pending(running, dave, "mcp.delete_file")
            assert mcp_server.deleted.count("/srv/old") == 0  # held, not run
            approved = running.gh.admin_call("POST", f"/v1/pending/{item['id']}/approve",
                                             dave, json={"reason": "cleanup"})
            assert approved.status_code == 200
            result = calling.result(timeout=20)
        assert result.content[0].text == "deleted /srv/old"  # type: ignore[attr-defined]
        assert mcp_server.deleted.count("/srv/old") == 1
    finally:
        running.gh.stop()
