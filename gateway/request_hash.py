"""The identity of a call: what a reviewer approves and what a retry must repeat byte for byte.

The hash covers the method, the full URL (scheme, host, port, path, query as sent), the body,
and every request header except those that change between two sends of the same call without
changing its meaning: hop-by-hop and transport headers, proxy credentials, and tracing ids.
Everything else the upstream could act on (content type, authorization, custom headers) is in.
"""

from __future__ import annotations

import hashlib

from gateway.call import Call

HEADERS_OUTSIDE_HASH = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length", "host", "proxy-authorization", "proxy-authenticate",
    "accept-encoding", "date", "user-agent", "traceparent", "tracestate", "x-request-id",
    "x-amzn-trace-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
})


def request_hash(call: Call) -> str:
    digest = hashlib.sha256()
    digest.update(call.method.upper().encode())
    digest.update(b"\n")
    digest.update(_bytes(call.url))
    digest.update(b"\n")
    headers = sorted((k, v) for k, v in call.headers if k not in HEADERS_OUTSIDE_HASH)
    for name, value in headers:
        digest.update(_bytes(f"{name}: {value}\n"))
    digest.update(b"\n")
    digest.update(hashlib.sha256(call.body).digest())
    return digest.hexdigest()


def _bytes(text: str) -> bytes:
    """Back to the bytes that were sent (mitmproxy keeps bytes that are not UTF-8 as
    surrogates)."""
    return text.encode("utf-8", "surrogateescape")
