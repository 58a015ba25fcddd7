"""Cutting a live flow's connections.

`flow.kill()` only marks a flow; mitmproxy notices at its next event for that flow, which may be
never (a raw TCP relay) or too late (a slow upstream). Closing the connections through their
proxyserver handler ends them at once.
"""

from __future__ import annotations

from mitmproxy import connection, ctx
from mitmproxy.flow import Flow


def cut(flow: Flow, *connections: connection.Connection) -> None:
    """Close the given connections of a live flow (all of them when none are named)."""
    handler = ctx.master.addons.get("proxyserver").connections.get(flow.client_conn.id)
    targets = connections or (flow.server_conn, flow.client_conn)
    if handler is not None:
        for conn in targets:
            if conn in handler.transports:
                handler.close_connection(conn)
    flow.kill()
