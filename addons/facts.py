"""Turn a mitmproxy flow into the plain `Call` that `gateway/` decides on."""

from __future__ import annotations

from urllib.parse import parse_qsl

from mitmproxy import http

from gateway.call import Call
from gateway.content import decode_body
from gateway.hostnames import normalise_host

INSPECT_LIMIT = 16 * 1024 * 1024  # decoded request bodies larger than this are not inspected


def call_from_flow(flow: http.HTTPFlow, agent: str) -> Call:
    """The call as the upstream would receive it. Raises UndecodableBody for bodies that
    cannot be decoded within the inspection limit: such a call is refused, never guessed at."""
    request = flow.request
    path, _, query = request.path.partition("?")
    body = decode_body(request.raw_content or b"", request.headers.get("content-encoding"),
                       INSPECT_LIMIT)
    return Call(
        method=request.method.upper(),
        scheme=request.scheme,
        host=normalise_host(request.host),
        port=request.port,
        path=path or "/",
        query=tuple(parse_qsl(query, keep_blank_values=True, errors="surrogateescape")),
        headers=tuple((k.lower(), v) for k, v in request.headers.items(multi=True)
                      if k.lower() != "proxy-authorization"),
        body=body,
        agent=agent,
    )
