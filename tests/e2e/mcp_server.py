"""A real MCP server (the official `mcp` SDK, streamable HTTP) on 127.0.0.1, in a thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings


@dataclass
class McpServer:
    port: int
    deleted: list[str] = field(default_factory=list)
    server: uvicorn.Server | None = None

    def stop(self) -> None:
        assert self.server is not None
        self.server.should_exit = True


def start_mcp_server(port: int) -> McpServer:
    state = McpServer(port)
    # the gateway forwards with the real Host header (tools.acme.internal), not 127.0.0.1
    mcp = FastMCP("acme-tools", host="127.0.0.1", port=port, stateless_http=True,
                  transport_security=TransportSecuritySettings(
                      enable_dns_rebinding_protection=False))

    @mcp.tool()
    def read_file(path: str) -> str:
        """Read a file."""
        return f"contents of {path}"

    @mcp.tool()
    def delete_file(path: str) -> str:
        """Delete a file."""
        state.deleted.append(path)
        return f"deleted {path}"

    @mcp.tool()
    def write_file(path: str, text: str) -> str:
        """Write a file."""
        return f"wrote {len(text)} characters to {path}"

    config = uvicorn.Config(mcp.streamable_http_app(), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    state.server = uvicorn.Server(config)
    threading.Thread(target=state.server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not state.server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.05)
    return state
