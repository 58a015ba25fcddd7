"""Canned upstream responses for the response-scanning tests: `/canned/{name}` on the upstream.

Each is a body an API might return, or one an attacker-controlled upstream might send to slip
personal data past the gateway (encodings, evasions, streams split mid-entity).
"""

from __future__ import annotations

import asyncio
import gzip
import json

import brotli
from aiohttp import web

SSN = "536-22-8726"
EMAIL = "jane.doe@example.com"
CUSTOMER = {"customer": {"id": "cus_8812", "email": EMAIL, "ssn": SSN, "plan": "pro"}}
CONTACT = {"contact": {"id": "cus_8812", "email": EMAIL, "plan": "pro",
                       "note": "Spoke with Margaret Thompson about the invoice."}}
SSE_EVENTS = [
    b'data: {"delta": "Your contact is "}\n\n',
    b'data: {"delta": "' + EMAIL.encode() + b' and the plan is pro"}\n\n',
    b"data: [DONE]\n\n",
]
SSE_WITH_SSN = [
    b'data: {"delta": "Looking up the customer"}\n\n',
    b'data: {"delta": "SSN on file: ' + SSN.encode() + b'"}\n\n',
    b"data: [DONE]\n\n",
]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


# name → (content type, content encoding, body)
STATIC: dict[str, tuple[str, str | None, bytes]] = {
    "customer": ("application/json", None, _json(CUSTOMER)),
    "contact": ("application/json", None, _json(CONTACT)),
    "contact-gzip": ("application/json", "gzip", gzip.compress(_json(CONTACT))),
    "contact-br": ("application/json", "br", brotli.compress(_json(CONTACT))),
    "text": ("text/plain; charset=utf-8", None, f"Write to {EMAIL} today.".encode()),
    "binary": ("image/png", None, PNG),
    "bomb": ("application/json", "gzip", gzip.compress(b" " * (40 * 1024 * 1024))),
    "unknown-encoding": ("application/json", "compress", _json(CONTACT)),
    "clean": ("application/json", None, _json({"status": "ok", "count": 3})),
    # evasions: each still carries an SSN the scanner must see through
    "fullwidth": ("application/json", None,
                  _json({"n": "５３６-２２-８７２６"})),
    "zero-width": ("application/json", None, _json({"n": "536\u200b-22-\u00ad8726"})),
    "json-escape": ("application/json", None,
                    b'{"n": "\\u0035\\u0033\\u0036-22-8726"}'),
    "url-encoded": ("text/plain", None, b"ssn=536%2D22%2D8726"),
    "spaced": ("application/json", None, _json({"n": "536 22 8726"})),
    "dotted": ("application/json", None, _json({"n": "536.22.8726"})),
}


async def canned(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name in STREAMS:
        return await _sse(request, STREAMS[name])
    content_type, encoding, body = STATIC[name]
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    return web.Response(body=body, headers=headers)


STREAMS = {"sse": (SSE_EVENTS, b"doe@"), "sse-ssn": (SSE_WITH_SSN, b"-22-")}


async def _sse(request: web.Request, stream_and_cut: tuple[list[bytes], bytes]
               ) -> web.StreamResponse:
    """Events written in small chunks, the entity split across two of them."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    events, inside = stream_and_cut
    stream = b"".join(events)
    cut = stream.index(inside) + 3
    for chunk in (stream[:cut], stream[cut:cut + 7], stream[cut + 7:]):
        await response.write(chunk)
        await asyncio.sleep(0.05)
    await response.write_eof()
    return response
