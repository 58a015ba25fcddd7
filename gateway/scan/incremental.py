"""Streamed bodies a piece at a time: `Content-Encoding` decoding and Server-Sent Events framing.

Both keep only what they must between chunks (a decoder's state, the bytes of an unfinished
event), so the work per chunk follows the size of the chunk, not of the stream so far.

Decoding fails closed as `gateway.content.decode_body` does: an unknown encoding, malformed or
truncated data, data after the end of a compressed stream, or more than `cap` decoded bytes
raise `UndecodableBody`. Every decoder stops as soon as its output passes the cap.
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol

import brotli
import zstandard

from gateway.content import UndecodableBody

# Brotli and zstd decoders have no output limit: one input byte may expand to tens of kilobytes,
# so they are fed a few bytes at a time and the cap is checked after each step.
_STEP = 16


class _Stage(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def end(self) -> bytes: ...


class _Budget:
    """Counts one stage's output and refuses it past the cap."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.produced = 0

    def left(self) -> int:
        return self.cap - self.produced

    def take(self, out: bytes) -> bytes:
        self.produced += len(out)
        if self.produced > self.cap:
            raise UndecodableBody(f"decoded `{self.name}` stream exceeds the {self.cap}-byte limit")
        return out


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def end(self) -> bytes:
        return b""


class _Zlib:
    """gzip, zlib-wrapped or raw deflate: `max_length` bounds each call's output exactly."""

    def __init__(self, wbits: int, name: str, cap: int) -> None:
        self.decoder = zlib.decompressobj(wbits)
        self.budget = _Budget(name, cap)

    def feed(self, data: bytes) -> bytes:
        if self.decoder.eof:
            if data:
                raise UndecodableBody(f"data after the end of the `{self.budget.name}` stream")
            return b""
        # one byte over what is left: a full answer means the cap is passed (never 0: no limit)
        out = self.budget.take(self.decoder.decompress(data, self.budget.left() + 1))
        if self.decoder.unused_data:  # a second gzip member or trailing bytes, as in content.py
            raise UndecodableBody(f"data after the end of the `{self.budget.name}` stream")
        return out

    def end(self) -> bytes:
        if not self.decoder.eof:
            raise UndecodableBody(f"truncated `{self.budget.name}` stream")
        return b""


class _Deflate:
    """`deflate` is zlib-wrapped by the standard and raw from some servers: the header decides."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.head = b""
        self.inner: _Zlib | None = None

    def feed(self, data: bytes) -> bytes:
        if self.inner is None:
            self.head += data
            if len(self.head) < 2:
                return b""
            data, self.head = self.head, b""
            try:  # zlib's own header check, on the two header bytes only
                zlib.decompressobj(zlib.MAX_WBITS).decompress(data[:2])
                wbits = zlib.MAX_WBITS
            except zlib.error:
                wbits = -zlib.MAX_WBITS
            self.inner = _Zlib(wbits, "deflate", self.cap)
        return self.inner.feed(data)

    def end(self) -> bytes:
        if self.inner is None:
            raise UndecodableBody("truncated `deflate` stream")
        return self.inner.end()


class _Brotli:
    def __init__(self, cap: int) -> None:
        self.decoder = brotli.Decompressor()
        self.budget = _Budget("br", cap)

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for start in range(0, len(data), _STEP):
            out += self.budget.take(self.decoder.process(data[start:start + _STEP]))
        return bytes(out)

    def end(self) -> bytes:
        if not self.decoder.is_finished():
            raise UndecodableBody("truncated `br` stream")
        return b""


class _Zstd:
    """Every frame in turn, as upstreams read them; the stream must end on a frame boundary."""

    def __init__(self, cap: int) -> None:
        self.decoder = zstandard.ZstdDecompressor().decompressobj()
        self.budget = _Budget("zstd", cap)
        self.frames = 0
        self.in_frame = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        pending = data
        while pending:
            step, pending = pending[:_STEP], pending[_STEP:]
            self.in_frame = True
            out += self.budget.take(self.decoder.decompress(step))
            if self.decoder.eof:
                self.frames += 1
                self.in_frame = False
                pending = self.decoder.unused_data + pending
                self.decoder = zstandard.ZstdDecompressor().decompressobj()
        return bytes(out)

    def end(self) -> bytes:
        if self.in_frame or not self.frames:
            raise UndecodableBody("truncated `zstd` stream")
        return b""


def _stage(encoding: str, cap: int) -> _Stage:
    if encoding == "identity":
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(zlib.MAX_WBITS | 16, encoding, cap)
    if encoding == "deflate":
        return _Deflate(cap)
    if encoding == "br":
        return _Brotli(cap)
    if encoding == "zstd":
        return _Zstd(cap)
    raise UndecodableBody(f"unknown content encoding `{encoding}`")


class StreamDecoder:
    """Undo a `Content-Encoding` list (last applied first) chunk by chunk, within `cap` bytes.

    Construction raises `UndecodableBody` for an encoding it does not know, so the caller can
    refuse the response before anything is sent.
    """

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        names = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
        self.stages = [_stage(name, cap) for name in reversed(names)]
        self.total = _Budget("stream", cap)

    def feed(self, chunk: bytes) -> bytes:
        """The decoded bytes `chunk` completes (possibly none)."""
        return self._run(chunk, final=False)

    def end(self) -> bytes:
        """What the decoders still hold; raises when a compressed stream stopped part way."""
        return self._run(b"", final=True)

    def _run(self, data: bytes, final: bool) -> bytes:
        try:
            for stage in self.stages:
                data = stage.feed(data)
                if final:
                    data += stage.end()
        except (zlib.error, brotli.error, zstandard.ZstdError) as e:
            raise UndecodableBody(f"malformed compressed stream: {e}") from e
        return self.total.take(data)


# A blank line: a line terminator (CRLF, LF, or a CR not starting a CRLF) followed by another.
_BLANK_LINE = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r)")
_LONGEST_BLANK = 4  # b"\r\n\r\n"


class EventFramer:
    """Cut a byte stream into SSE events, each ending with its blank line, as bytes arrive.

    Only the bytes of the unfinished event are kept, and a blank line is searched for only
    among the new bytes (and the few before them it could start in). A CR at the end of an
    event may turn out to be the first half of a CRLF: its LF then starts the next piece,
    an empty line, which SSE readers skip; the bytes sent on are the same either way.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.resume = 0  # no blank line ends before this offset + _LONGEST_BLANK

    @property
    def pending(self) -> int:
        """Bytes of the event not yet complete."""
        return len(self.buffer)

    def push(self, data: bytes) -> list[bytes]:
        """The events `data` completes, in order, each with its closing blank line."""
        self.buffer += data
        events: list[bytes] = []
        start = 0
        search = self.resume
        while (match := _BLANK_LINE.search(self.buffer, search)) is not None:
            events.append(bytes(self.buffer[start:match.end()]))
            start = search = match.end()
        del self.buffer[:start]
        self.resume = max(0, len(self.buffer) - (_LONGEST_BLANK - 1))
        return events

    def rest(self) -> bytes:
        """The unfinished event at the end of the stream (its blank line never came)."""
        rest, self.buffer, self.resume = bytes(self.buffer), bytearray(), 0
        return rest


__all__ = ["EventFramer", "StreamDecoder", "UndecodableBody"]
