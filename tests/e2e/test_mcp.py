"""MCP over streamable HTTP through the gateway, with the official `mcp` SDK on both sides.

The agent's code is the SDK's own client, unchanged: only HTTP_PROXY points it at Gatehouse.
Each `tools/call` becomes the action `mcp.<tool>`, decided by the reference policy.
"""

from __future__ import annotations

import asyncio
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


def test_a_delete_is_held_for_two_reviewers_and_not_run(agent_env: Running,
                                                        mcp_server: McpServer) -> None:
    with pytest.raises(BaseException) as raised:
        asyncio.run(call_tool("delete_file", {"path": "/srv/data"}))
    assert refusal_status(raised.value) == 503  # approval_pending
    assert mcp_server.deleted == []
    record = agent_env.gh.admin_call("GET", "/v1/audit?action=mcp.delete_file",
                                     agent_env.people["auditor"]).json()["items"][-1]
    assert record["decision"] == "approval_pending"
    assert record["rule_ids"] == ["mcp-deletes"] and record["params"] == {"path": "/srv/data"}


def test_a_tool_no_rule_allows_is_denied_by_default(agent_env: Running) -> None:
    with pytest.raises(BaseException) as raised:
        asyncio.run(call_tool("write_file", {"path": "/srv/x", "text": "hi"}))
    assert refusal_status(raised.value) == 403
    record = agent_env.gh.admin_call("GET", "/v1/audit?action=mcp.write_file",
                                     agent_env.people["auditor"]).json()["items"][-1]
    assert record["decision"] == "denied" and record["rule_ids"] == []
