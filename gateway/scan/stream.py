"""Scan a streamed response (Server-Sent Events: LLM APIs, MCP streamable HTTP) event by event.

Pure and synchronous, for mitmproxy's `flow.response.stream` callable: the scanner is fed the
network chunks as they come and returns what may be sent on now. Only complete events go out,
each scanned and redacted; the bytes of an unfinished event wait, so an entity cut by a chunk
boundary (mid-SSN, mid-email, mid-UTF-8 character) is seen whole.

- The `data:` lines of an event are joined with "\\n" (as SSE readers join them) and judged with
  `redact.scan_json` (JSON, or text when it is not JSON). Every other line (`event:`, `id:`,
  `retry:`, comments, unknown fields) is scanned as text: an upstream can put data anywhere.
  A clean event is sent byte for byte; a redacted one is rewritten with one `data:` line per
  line of the redacted payload, its other lines masked in place.
- The policy's own recognizers (`settings.recognizers`) count in every scan: data, other lines
  and the join across events below.
- Strings every event repeats (ids, model names, keys) are not scanned again: the scanner keeps
  the findings of short texts per process (`scan.CACHED_CHARS`); a chunk of an OpenAI-style
  stream costs about 0.05 ms on `patterns` (0.12 ms with the join), so no per-stream cache.
- The output is decoded: the caller drops `Content-Encoding` and `Content-Length`.
- On a `quarantine` or `unscannable` verdict (quarantine entity, analyzer error, event over
  `max_event_bytes`, stream over the cap, undecodable or non-UTF-8 bytes) the scanner stops:
  that event and everything after it are withheld, one final `event: gatehouse` event says so,
  and `stopped` tells the caller why. Chunks after a stop are neither decoded nor kept.

Known limit: each event is scanned on its own. An entity split across two EVENTS (an LLM
streaming a card number token by token, one delta per event) is not found by that scan, and
once an event has been sent it cannot be redacted. As a partial safeguard, the string fields
of consecutive events are joined per JSON path (`choices[0].delta.content` with the next
event's) and the join is scanned for QUARANTINE entities only: one found stops the stream before
the event that completes it, though its first pieces have already been sent. Entities to redact
or report across events are not caught, nor are pieces an upstream interleaves on purpose.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.content import UndecodableBody
from gateway.scan.incremental import EventFramer, StreamDecoder
from gateway.scan.redact import (
    DEFAULT_LIMITS,
    ROOT,
    Action,
    Limits,
    Outcome,
    Record,
    Result,
    scan_json,
    scan_plain_text,
)
from gateway.scan.scan import scan_text
from gateway.scan.settings import ScanSettings

log = logging.getLogger(__name__)

_HELD = (Outcome.QUARANTINE, Outcome.UNSCANNABLE)
_MESSAGES = {
    Outcome.QUARANTINE: "Gatehouse withheld the rest of this response: it contains data the "
                        "policy does not let through",
    Outcome.UNSCANNABLE: "Gatehouse withheld the rest of this response: it could not be scanned",
}
_EOL = re.compile(r"(\r\n|\r|\n)")
_BOM = "\ufeff"
_LINE_CACHE_SIZE = 1024  # `event: message`, `: ping` and the like are scanned once per stream

# Joining string fields across events (see the module docstring).
_JOIN_WINDOW = 128  # characters each side of the join; longer than the entities it looks for
_JOIN_MAX_LEAVES = 32  # events with more string fields than this are not deltas
_JOIN_MAX_PATHS = 64


class UnscannableStream(ValueError):
    """The stream cannot be scanned at all (unknown content encoding): refuse the response."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the stream was cut: the outcome, a short note, the records of the event withheld.

    `event` is the index of that event, or None when the bytes could not be cut into events
    (undecodable, over the cap).
    """

    outcome: Outcome
    note: str
    records: tuple[Record, ...] = ()
    event: int | None = None


@dataclass(slots=True)
class _Line:
    text: str
    eol: str
    field: str  # "data", "event", "id", "retry", "comment", "other" or "" (an empty line)


def _lines(text: str) -> list[_Line]:
    parts = _EOL.split(text)
    pairs = zip(parts[0::2], [*parts[1::2], ""], strict=True)
    return [_Line(t, eol, _field(t)) for t, eol in pairs if t or eol]


def _field(line: str) -> str:
    if not line:
        return ""
    if line.startswith(":"):
        return "comment"
    name = line.split(":", 1)[0]
    return name if name in ("data", "event", "id", "retry") else "other"


def _data_value(line: str) -> str:
    value = line.split(":", 1)[1] if ":" in line else ""
    return value[1:] if value.startswith(" ") else value


def _prefixed(records: tuple[Record, ...], prefix: str) -> list[Record]:
    """`response.customer.email` → `response.events[3].data.customer.email`."""
    return [dataclasses.replace(r, field=prefix + r.field[len(ROOT):]) for r in records]


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a parsed JSON value, with its path (for joining, never shown)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}[{i}]")


def _held_note(result: Result) -> str:
    """`quarantined entity: US_SSN` (types only), or why the event could not be scanned."""
    if result.outcome is Outcome.QUARANTINE:
        types = sorted({r.reason for r in result.verdict.records if r.action is Action.QUARANTINED})
        return f"quarantined entity: {', '.join(types)}"
    return result.note or "unscannable"


class _Held(Exception):
    """An event's verdict holds the stream."""

    def __init__(self, outcome: Outcome, note: str, records: list[Record]) -> None:
        super().__init__(note)
        self.outcome = outcome
        self.note = note
        self.records = records


class _Joiner:
    """The last characters of each string field, to scan what consecutive events spell."""

    def __init__(self, settings: ScanSettings) -> None:
        self.tier = settings.tier
        self.entities = list(settings.quarantine)
        self.recognizers = settings.recognizers  # a quarantine entity may be the policy's own
        # path → (last value, the end of its values joined, whether the value ever changed)
        self.tails: dict[str, tuple[str | None, str, bool]] = {}

    def check(self, data: str, index: int) -> None:
        if not self.entities:
            return
        try:
            tree = orjson.loads(data)
        except orjson.JSONDecodeError:
            tree = data
        leaves = list(_leaves(tree))
        if len(leaves) > _JOIN_MAX_LEAVES:
            return
        for path, value in leaves:
            last, tail, moving = self.tails.pop(path, (None, "", False))
            if value:
                # a field that never changes (an id, a model name) is no delta: not joined
                moving = moving or (last is not None and value != last)
                if moving and tail:
                    self._scan(tail, value, index)
                last, tail = value, (tail + value)[-_JOIN_WINDOW:]
            self.tails[path] = (last, tail, moving)
        while len(self.tails) > _JOIN_MAX_PATHS:
            del self.tails[next(iter(self.tails))]

    def _scan(self, before: str, value: str, index: int) -> None:
        head = value[:_JOIN_WINDOW]
        try:
            findings = scan_text(before + head, self.tier, self.entities,
                                 recognizers=self.recognizers)
        except Exception as exc:  # analyzer fault: fail closed
            raise _Held(Outcome.UNSCANNABLE, f"analyzer failed: {type(exc).__name__}", []) from exc
        split = [f for f in findings if f.start < len(before) < f.end]
        if split:
            records = [Record(f"{ROOT}.events[{index}].data", f.entity, f.score,
                              Action.QUARANTINED) for f in split]
            note = "quarantined entity split across events: " + ", ".join(
                sorted({f.entity for f in split}))
            raise _Held(Outcome.QUARANTINE, note, records)


class StreamScanner:
    """Scan an SSE response as it streams; see the module docstring.

    `settings` say what to look for; `content_encoding` is the response's header value;
    an event (with its blank line) over `max_event_bytes` stops the stream, and so does a
    stream decoding to more than `max_total_bytes` (default: `settings.max_body_bytes`).
    `on_stop`, called once when the stream stops, returns the fields to add to the final
    event's JSON data (a quarantine id, the request id). Unknown encodings raise
    `UnscannableStream` here, before anything is sent.

    Use as `flow.response.stream = scanner`: calling it with a chunk feeds it, with b"" finishes.
    """

    def __init__(
        self,
        settings: ScanSettings,
        content_encoding: str | None,
        max_event_bytes: int,
        *,
        max_total_bytes: int | None = None,
        on_stop: Callable[[Stop], Mapping[str, Any]] | None = None,
        join_events: bool = True,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.settings = settings
        self.max_event_bytes = max_event_bytes
        self.cap = settings.max_body_bytes if max_total_bytes is None else max_total_bytes
        try:
            self._decoder = StreamDecoder(content_encoding, self.cap)
        except UndecodableBody as exc:
            raise UnscannableStream(str(exc)) from exc
        self._on_stop = on_stop
        self._joiner = _Joiner(settings) if join_events else None
        self._limits = limits
        self._framer = EventFramer()
        self._captured = bytearray()
        self._records: list[Record] = []
        self._line_cache: dict[str, Result] = {}
        self._events = 0
        self._redacted = False
        self._finished = False
        self.stopped: Stop | None = None

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record of every event so far (those of a withheld event included)."""
        return tuple(self._records)

    @property
    def captured(self) -> bytes:
        """The decoded bytes received so far (at most the cap): evidence for a quarantine."""
        return bytes(self._captured)

    @property
    def outcome(self) -> Outcome:
        """The stream's outcome so far: the stop's, else `redacted` if any event was."""
        if self.stopped is not None:
            return self.stopped.outcome
        return Outcome.REDACTED if self._redacted else Outcome.PASS

    def __call__(self, chunk: bytes) -> bytes:
        """mitmproxy's stream contract: each chunk, then b"" once at the end."""
        return self.feed(chunk) if chunk else self.finish()

    def feed(self, chunk: bytes) -> bytes:
        """The complete events `chunk` finishes, scanned and redacted (possibly b"")."""
        if self.stopped is not None or self._finished:
            return b""
        try:
            decoded = self._decoder.feed(chunk)
        except UndecodableBody as exc:
            return self._stop(Outcome.UNSCANNABLE, str(exc))
        self._captured += decoded
        out = self._send(self._framer.push(decoded))
        if self.stopped is None and self._framer.pending > self.max_event_bytes:
            out += self._stop(Outcome.UNSCANNABLE, self._too_large(), event=self._events)
        return out

    def finish(self) -> bytes:
        """The end of the stream: the rest, scanned (an event without its blank line too)."""
        if self.stopped is not None or self._finished:
            return b""
        self._finished = True
        try:
            decoded = self._decoder.end()
        except UndecodableBody as exc:
            return self._stop(Outcome.UNSCANNABLE, str(exc))
        self._captured += decoded
        pieces = self._framer.push(decoded)
        rest = self._framer.rest()
        return self._send([*pieces, rest] if rest else pieces)

    def _too_large(self) -> str:
        return f"event over {self.max_event_bytes} bytes"

    def _send(self, pieces: list[bytes]) -> bytes:
        out = bytearray()
        for piece in pieces:
            if not piece.strip(b"\r\n"):  # empty lines between events: nothing to scan
                out += piece
                continue
            index = self._events
            self._events += 1
            if len(piece) > self.max_event_bytes:
                return bytes(out + self._stop(Outcome.UNSCANNABLE, self._too_large(), event=index))
            try:
                out += self._event(piece, index)
            except _Held as held:
                return bytes(out + self._stop(held.outcome, held.note, held.records, index))
            except Exception as exc:  # a fault here must hold the stream, never pass it
                log.exception("scanning event %d of a stream failed", index)
                note = f"scanner failed: {type(exc).__name__}"
                return bytes(out + self._stop(Outcome.UNSCANNABLE, note, event=index))
        return bytes(out)

    def _event(self, raw: bytes, index: int) -> bytes:
        """The event as it may be sent, or `_Held` with the records of what holds it."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Held(Outcome.UNSCANNABLE, "event is not UTF-8", []) from None
        bom = _BOM if index == 0 and text.startswith(_BOM) else ""
        lines = _lines(text[len(bom):])
        prefix = f"{ROOT}.events[{index}]"
        records: list[Record] = []
        changed = False
        for line in lines:
            if line.field in ("", "data"):
                continue
            result = self._scan_line(line.text)
            records += _prefixed(result.verdict.records, f"{prefix}.{line.field}")
            if result.outcome in _HELD:
                raise _Held(result.outcome, _held_note(result), records)
            if result.outcome is Outcome.REDACTED:
                line.text, changed = str(result.body), True
        data_lines = [line for line in lines if line.field == "data"]
        if data_lines:
            data = "\n".join(_data_value(line.text) for line in data_lines)
            result = scan_json(data.encode(), self.settings.tier, self.settings, self._limits)
            records += _prefixed(result.verdict.records, f"{prefix}.data")
            if result.outcome in _HELD:
                raise _Held(result.outcome, _held_note(result), records)
            if self._joiner is not None:
                try:
                    self._joiner.check(data, index)
                except _Held as held:
                    held.records[:0] = records
                    raise
            if result.outcome is Outcome.REDACTED:
                body = result.body.decode() if isinstance(result.body, bytes) else str(result.body)
                eol = next((line.eol for line in lines if line.text and line.eol), "\n")
                for line in data_lines[:-1]:
                    line.field = "drop"
                data_lines[-1].text = eol.join(f"data: {p}" if p else "data:"
                                               for p in body.split("\n"))
                changed = True
        self._records += records
        if not changed:
            return raw
        self._redacted = True
        kept = "".join(line.text + line.eol for line in lines if line.field != "drop")
        return (bom + kept).encode()

    def _scan_line(self, line: str) -> Result:
        result = self._line_cache.get(line)
        if result is None:
            result = scan_plain_text(line, self.settings.tier, self.settings, self._limits)
            if len(self._line_cache) >= _LINE_CACHE_SIZE:
                self._line_cache.clear()
            self._line_cache[line] = result
        return result

    def _stop(
        self, outcome: Outcome, note: str, records: list[Record] | None = None,
        event: int | None = None,
    ) -> bytes:
        self.stopped = Stop(outcome, note, tuple(records or ()), event)
        self._records += records or ()
        data: dict[str, Any] = {"error": "quarantined", "outcome": str(outcome),
                                "message": _MESSAGES[outcome]}
        try:
            extra = dict(self._on_stop(self.stopped)) if self._on_stop else {}
            payload = orjson.dumps({**data, **extra})
        except Exception:  # the stream stays cut either way; only the extra fields are lost
            log.exception("the stop callback of a stream failed")
            payload = orjson.dumps(data)
        return b"event: gatehouse\ndata: " + payload + b"\n\n"


__all__ = ["Stop", "StreamScanner", "UnscannableStream"]
