"""The identity of a call: what a reviewer approves and what a retry must repeat byte for byte.

The hash covers the method, scheme, host and port, the request target (path and query) and the
body byte for byte as sent, and every request header except those that change between two sends
of the same call without changing its meaning: hop-by-hop and transport headers, proxy
credentials, and tracing ids. Everything else the upstream could act on is in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

HEADERS_OUTSIDE_HASH = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length", "host", "proxy-authorization", "proxy-authenticate",
    "accept-encoding", "date", "user-agent", "traceparent", "tracestate", "x-request-id",
    "x-amzn-trace-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
})


def request_hash(*, method: str, scheme: str, host: str, port: int, target: str,
                 headers: Iterable[tuple[str, str]], body: bytes) -> str:
    """`method`, `target` (path and query) and `body` exactly as sent: not normalised, not
    decoded, so two requests that an upstream could read differently never share a hash."""
    digest = hashlib.sha256()
    digest.update(_bytes(f"{method}\n{scheme}://{host}:{port}\n{target}\n"))
    kept = sorted((k.lower(), v) for k, v in headers if k.lower() not in HEADERS_OUTSIDE_HASH)
    for name, value in kept:
        digest.update(_bytes(f"{name}: {value}\n"))
    digest.update(b"\n")
    digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


def _bytes(text: str) -> bytes:
    """Back to the bytes that were sent (mitmproxy keeps bytes that are not UTF-8 as
    surrogates)."""
    return text.encode("utf-8", "surrogateescape")
