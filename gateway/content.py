"""Decode `Content-Encoding` with a cap on the decoded size.

A small compressed body can expand to gigabytes (a decompression bomb); every decoder here stops
as soon as the output passes the cap, and the caller refuses the body rather than expand it.
"""

from __future__ import annotations

import io
import zlib

import brotli
import zstandard

# Headers that describe a body's bytes: dropped when Gatehouse delivers other bytes (decoded,
# redacted), since they would no longer be true of what the agent receives.
BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "etag",
                          "content-md5", "digest"})


class UndecodableBody(ValueError):
    """The body cannot be decoded within the cap (unknown, malformed or too large)."""


# Brotli's decoder has no output limit, and one meta-block may expand to 16 MiB: feeding the
# input a few bytes at a time bounds what one call can produce before the cap is checked.
_BROTLI_STEP = 16


def decode_body(raw: bytes, content_encoding: str | None, cap: int) -> bytes:
    """Undo every listed encoding (last applied first); raise UndecodableBody past `cap` bytes."""
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    body = raw
    for encoding in reversed(encodings):
        body = _decode_one(body, encoding, cap)
    if len(body) > cap:
        raise UndecodableBody(f"body is larger than the {cap}-byte limit")
    return body


def _decode_one(body: bytes, encoding: str, cap: int) -> bytes:
    try:
        if encoding == "identity":
            return body
        if encoding in ("gzip", "x-gzip"):
            return _zlib(body, zlib.MAX_WBITS | 16, cap, encoding)
        if encoding == "deflate":
            try:
                return _zlib(body, zlib.MAX_WBITS, cap, encoding)
            except zlib.error:  # some servers send raw deflate without the zlib header
                return _zlib(body, -zlib.MAX_WBITS, cap, encoding)
        if encoding == "br":
            return _brotli(body, cap)
        if encoding == "zstd":  # every frame, as upstreams read them
            with zstandard.ZstdDecompressor().stream_reader(
                    io.BytesIO(body), read_across_frames=True) as reader:
                return _capped(reader.read(cap + 1), encoding, cap)
    except (zlib.error, brotli.error, zstandard.ZstdError) as e:
        raise UndecodableBody(f"malformed `{encoding}` body: {e}") from e
    raise UndecodableBody(f"unknown content encoding `{encoding}`")


def _zlib(body: bytes, wbits: int, cap: int, encoding: str) -> bytes:
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(body, cap + 1)
    if not decoder.eof and len(out) <= cap:
        raise UndecodableBody("truncated compressed body")
    if decoder.unused_data:
        # a second gzip member or trailing bytes: some upstreams read them, so the policy and
        # the reviewer would judge a different body than the one acted on
        raise UndecodableBody(f"data after the end of the `{encoding}` stream")
    return _capped(out, encoding, cap)


def _brotli(body: bytes, cap: int) -> bytes:
    decoder = brotli.Decompressor()
    out = bytearray()
    for start in range(0, len(body), _BROTLI_STEP):
        out += decoder.process(body[start:start + _BROTLI_STEP])
        _capped(out, "br", cap)
    if not decoder.is_finished():
        raise UndecodableBody("truncated `br` body")
    return bytes(out)


def _capped(out: bytes | bytearray, encoding: str, cap: int) -> bytes:
    if len(out) > cap:
        raise UndecodableBody(f"decoded `{encoding}` body exceeds the {cap}-byte limit")
    return bytes(out)
