"""Streamed responses scanned event by event, with the real Presidio analyzer (`patterns` tier)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable

import brotli
import pytest
import zstandard

from gateway.scan.incremental import EventFramer
from gateway.scan.redact import Action, Outcome
from gateway.scan.settings import RecognizerSpec, ScanSettings
from gateway.scan.stream import Stop, StreamScanner, UnscannableStream

SETTINGS = ScanSettings(
    tier="patterns",
    detect=("EMAIL_ADDRESS", "US_SSN"),
    redact=("EMAIL_ADDRESS",),
    quarantine=("US_SSN",),
)
EMAIL = "jane@example.org"
SSN = "536-22-8726"
MAX_EVENT = 64 * 1024


def _scanner(encoding: str | None = None, **kw) -> StreamScanner:
    return StreamScanner(SETTINGS, encoding, kw.pop("max_event_bytes", MAX_EVENT), **kw)


def _run(scanner: StreamScanner, chunks: Iterable[bytes]) -> bytes:
    out = b"".join(scanner.feed(c) for c in chunks)
    return out + scanner.finish()


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _splits(data: bytes) -> Iterable[list[bytes]]:
    """The stream in two chunks, cut at every byte offset."""
    for cut in range(len(data) + 1):
        yield [data[:cut], data[cut:]]


def _stop_event(outcome: str, **extra: object) -> bytes:
    messages = {
        "quarantine": "Gatehouse withheld the rest of this response: it contains data the "
                      "policy does not let through",
        "unscannable": "Gatehouse withheld the rest of this response: it could not be scanned",
    }
    data = {"error": "quarantined", "outcome": outcome, "message": messages[outcome], **extra}
    return b"event: gatehouse\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _events(out: bytes) -> list[str]:
    return [e for e in out.decode().split("\n\n") if e]


OPENAI = b"".join(
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}'
    b"\n\n" % token
    for token in (b"Hello", b" there", b",", b" how", b" can", b" I", b" help", b"?")
) + b"data: [DONE]\n\n"


# --- entities cut by chunk boundaries ---------------------------------------------------------


def test_email_split_at_every_offset_is_redacted() -> None:
    stream = (b'event: message\ndata: {"n": 1}\n\n'
              b'data: {"to": "' + EMAIL.encode() + b'", "n": 2}\n\n'
              b"data: tail\n\n")
    expected = (b'event: message\ndata: {"n": 1}\n\n'
                b'data: {"to":"<EMAIL_ADDRESS>","n":2}\n\n'
                b"data: tail\n\n")
    for chunks in _splits(stream):
        scanner = _scanner()
        assert _run(scanner, chunks) == expected, chunks
        assert scanner.stopped is None
        assert scanner.outcome is Outcome.REDACTED
        assert [(r.field, r.reason, r.action) for r in scanner.records] == [
            ("response.events[1].data.to", "EMAIL_ADDRESS", Action.REDACTED)]


def test_email_fed_byte_by_byte_is_redacted() -> None:
    stream = b"data: write to " + EMAIL.encode() + b" today\n\n"
    assert _run(_scanner(), _chunks(stream, 1)) == b"data: write to <EMAIL_ADDRESS> today\n\n"


def _recorder(calls: list[Stop]):
    """An `on_stop` that notes each call and names a quarantine."""
    def on_stop(stop: Stop) -> dict[str, str]:
        calls.append(stop)
        return {"quarantine_id": "q-1"}
    return on_stop


def test_ssn_split_at_every_offset_stops_the_stream_and_nothing_of_its_event_leaks() -> None:
    clean = b'data: {"n": 1}\n\n'
    stream = clean + b'data: {"customer": {"ssn": "' + SSN.encode() + b'"}}\n\ndata: after\n\n'
    for chunks in _splits(stream):
        calls: list[Stop] = []
        scanner = _scanner(on_stop=_recorder(calls))
        out = _run(scanner, chunks)
        assert out == clean + _stop_event("quarantine", quarantine_id="q-1"), chunks
        assert len(calls) == 1 and calls[0] is scanner.stopped
        assert scanner.stopped.outcome is Outcome.QUARANTINE
        assert scanner.stopped.note == "quarantined entity: US_SSN"
        assert scanner.stopped.event == 1
        assert [(r.field, r.action) for r in scanner.stopped.records] == [
            ("response.events[1].data.customer.ssn", Action.QUARANTINED)]
        assert scanner.outcome is Outcome.QUARANTINE


def test_nothing_is_sent_after_a_stop() -> None:
    scanner = _scanner()
    first = scanner.feed(b"data: " + SSN.encode() + b"\n\n")
    assert first == _stop_event("quarantine")
    assert scanner.feed(b"data: clean\n\n") == b""
    assert scanner.finish() == b""
    assert scanner.captured == b"data: " + SSN.encode() + b"\n\n"  # later chunks are not kept


def test_multibyte_character_cut_at_every_offset() -> None:
    stream = "data: {\"text\": \"crème brûlée 🍮 for " + EMAIL + " ✓\"}\n\n"
    expected = 'data: {"text":"crème brûlée 🍮 for <EMAIL_ADDRESS> ✓"}\n\n'.encode()
    raw = stream.encode()
    for chunks in _splits(raw):
        assert _run(_scanner(), chunks) == expected
    clean = "data: naïve café 🍮\n\n".encode()
    for chunks in _splits(clean):
        assert _run(_scanner(), chunks) == clean


# --- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_line_endings_frame_events_and_are_kept(eol: bytes) -> None:
    def framed(*lines: bytes) -> bytes:
        return b"".join(line + eol for line in lines) + eol

    stream = (framed(b"event: message", b"id: 1", b"data: hello")
              + framed(b"data: mail " + EMAIL.encode(), b"data: second line")
              + framed(b"data: bye"))
    expected = (framed(b"event: message", b"id: 1", b"data: hello")
                + framed(b"data: mail <EMAIL_ADDRESS>", b"data: second line")
                + framed(b"data: bye"))
    for size in (1, 2, 3, 5, len(stream)):
        scanner = _scanner()
        assert _run(scanner, _chunks(stream, size)) == expected, size
        assert [r.field for r in scanner.records] == ["response.events[1].data"]
    clean = framed(b"data: hello") + framed(b": comment", b"data: bye")
    for chunks in _splits(clean):
        assert _run(_scanner(), chunks) == clean


def test_crlf_split_between_cr_and_lf_still_frames_one_event() -> None:
    scanner = _scanner()
    assert scanner.feed(b"data: a\r") == b""
    assert scanner.feed(b"\ndata: b\r\n\r") == b"data: a\r\ndata: b\r\n\r"
    assert scanner.feed(b"\ndata: c\r\n\r\n") == b"\ndata: c\r\n\r\n"  # the LF: an empty line


def test_framer_cuts_only_at_blank_lines() -> None:
    framer = EventFramer()
    assert framer.push(b"data: a\r\ndata: b\r") == []
    assert framer.push(b"\n") == []
    assert framer.push(b"\r\n: c\n\nda") == [b"data: a\r\ndata: b\r\n\r\n", b": c\n\n"]
    assert framer.pending == 2
    assert framer.rest() == b"da"


def test_multi_line_json_data_is_joined_and_written_back() -> None:
    stream = b'data: {"user":\ndata:  {"email": "' + EMAIL.encode() + b'",\ndata: "n": 1}}\n\n'
    scanner = _scanner()
    assert _run(scanner, [stream]) == b'data: {"user":{"email":"<EMAIL_ADDRESS>","n":1}}\n\n'
    assert [r.field for r in scanner.records] == ["response.events[0].data.user.email"]


def test_multi_line_text_data_keeps_one_data_line_per_line() -> None:
    stream = (b"id: 7\ndata: Dear Jane,\ndata:\ndata: write to " + EMAIL.encode()
              + b"\nevent: letter\ndata: regards\n\n")
    expected = (b"id: 7\nevent: letter\ndata: Dear Jane,\ndata:\ndata: write to <EMAIL_ADDRESS>"
                b"\ndata: regards\n\n")
    assert _run(_scanner(), [stream]) == expected


def test_openai_style_stream_passes_byte_identical_when_clean() -> None:
    for size in (1, 7, 64, len(OPENAI)):
        scanner = _scanner()
        assert _run(scanner, _chunks(OPENAI, size)) == OPENAI
        assert scanner.outcome is Outcome.PASS and scanner.records == ()
        assert scanner.captured == OPENAI


def test_empty_lines_bom_and_events_without_data_pass() -> None:
    stream = "\ufeff: hello\n\n\n\nretry: 3000\n\nevent: ping\n\n".encode()
    assert _run(_scanner(), _chunks(stream, 3)) == stream


# --- every field is scanned --------------------------------------------------------------------


def test_event_id_comment_and_unknown_fields_are_scanned() -> None:
    stream = (b"event: to " + EMAIL.encode() + b"\nid: " + EMAIL.encode()
              + b"\n: from " + EMAIL.encode() + b"\n" + EMAIL.encode() + b": 1\ndata: ok\n\n")
    scanner = _scanner()
    assert _run(scanner, [stream]) == (
        b"event: to <EMAIL_ADDRESS>\nid: <EMAIL_ADDRESS>\n: from <EMAIL_ADDRESS>\n"
        b"<EMAIL_ADDRESS>: 1\ndata: ok\n\n")
    assert [r.field for r in scanner.records] == [
        "response.events[0].event", "response.events[0].id", "response.events[0].comment",
        "response.events[0].other"]


@pytest.mark.parametrize("line", [b": ssn " + SSN.encode(), b"id: " + SSN.encode(),
                                  b"event: " + SSN.encode()], ids=["comment", "id", "event"])
def test_a_quarantine_entity_outside_data_stops(line: bytes) -> None:
    scanner = _scanner()
    assert _run(scanner, [b"data: a\n\n" + line + b"\ndata: b\n\n"]) == (
        b"data: a\n\n" + _stop_event("quarantine"))
    assert scanner.stopped.event == 1


# --- end of the stream -------------------------------------------------------------------------


def test_trailing_event_without_blank_line_is_scanned_at_finish() -> None:
    scanner = _scanner()
    assert scanner.feed(b"data: a\n\ndata: mail " + EMAIL.encode()) == b"data: a\n\n"
    assert scanner.finish() == b"data: mail <EMAIL_ADDRESS>"
    assert scanner.records[0].field == "response.events[1].data"

    scanner = _scanner()
    assert scanner.feed(b"data: a\n\ndata: " + SSN.encode() + b"\n") == b"data: a\n\n"
    assert scanner.finish() == _stop_event("quarantine")
    assert scanner.stopped.outcome is Outcome.QUARANTINE


def test_mitmproxy_contract_empty_chunk_finishes() -> None:
    scanner = _scanner()
    assert scanner(b"data: x") == b""
    assert scanner(b"") == b"data: x"
    assert scanner(b"data: y\n\n") == b""


# --- limits and failures -----------------------------------------------------------------------


def test_event_over_the_size_limit_stops() -> None:
    scanner = _scanner(max_event_bytes=32)
    out = _run(scanner, [b"data: small\n\ndata: " + b"x" * 40 + b"\n\ndata: after\n\n"])
    assert out == b"data: small\n\n" + _stop_event("unscannable")
    assert scanner.stopped.note == "event over 32 bytes"


def test_unfinished_event_over_the_size_limit_stops_without_waiting() -> None:
    scanner = _scanner(max_event_bytes=32)
    assert scanner.feed(b"data: small\n\ndata: " + b"x" * 20) == b"data: small\n\n"
    assert scanner.feed(b"x" * 20) == _stop_event("unscannable")
    assert scanner.stopped.event == 1


def test_event_not_utf8_stops() -> None:
    scanner = _scanner()
    assert _run(scanner, [b"data: ok\n\ndata: \xff\xfe\n\n"]) == (
        b"data: ok\n\n" + _stop_event("unscannable"))
    assert scanner.stopped.note == "event is not UTF-8"


def test_analyzer_fault_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kw: object) -> list[object]:
        raise RuntimeError("model crashed")

    monkeypatch.setattr("gateway.scan.redact.scan_texts", broken)
    scanner = _scanner()
    assert _run(scanner, [b"data: hello\n\n"]) == _stop_event("unscannable")
    assert scanner.stopped.note == "analyzer failed: RuntimeError"


def test_stop_callback_failure_still_cuts_the_stream() -> None:
    def broken(stop: Stop) -> dict[str, object]:
        raise RuntimeError("store down")

    scanner = _scanner(on_stop=broken)
    assert _run(scanner, [b"data: " + SSN.encode() + b"\n\n"]) == _stop_event("quarantine")


def test_unknown_encoding_is_refused_at_construction() -> None:
    with pytest.raises(UnscannableStream, match="unknown content encoding `compress`"):
        _scanner("compress")
    with pytest.raises(UnscannableStream, match="unknown content encoding `snappy`"):
        _scanner("gzip, snappy")


# --- content encodings -------------------------------------------------------------------------


def _zstd_two_frames(data: bytes) -> bytes:
    half = len(data) // 2
    compressor = zstandard.ZstdCompressor()
    return compressor.compress(data[:half]) + compressor.compress(data[half:])


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": _zstd_two_frames,
    "identity": lambda data: data,
    "gzip, br": lambda data: brotli.compress(gzip.compress(data)),
}


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("encoding", [*ENCODERS, "raw deflate"])
@pytest.mark.parametrize("size", [1, 3, 7, 13, 101])
def test_encoded_streams_are_decoded_and_scanned(encoding: str, size: int) -> None:
    stream = OPENAI + b'data: {"to": "' + EMAIL.encode() + b'"}\n\n'
    if encoding == "raw deflate":
        body, header = _raw_deflate(stream), "deflate"
    else:
        body, header = ENCODERS[encoding](stream), encoding
    scanner = _scanner(header)
    assert _run(scanner, _chunks(body, size)) == OPENAI + b'data: {"to":"<EMAIL_ADDRESS>"}\n\n'
    assert scanner.captured == stream


def test_clean_gzip_stream_is_sent_decoded_event_by_event() -> None:
    body = gzip.compress(OPENAI)
    scanner = _scanner("GZIP")
    outs = [scanner.feed(c) for c in _chunks(body, 17)] + [scanner.finish()]
    assert b"".join(outs) == OPENAI
    assert sum(1 for o in outs if o) > 1  # events go out as they complete, not at the end


BOMBS = {
    "gzip": lambda data: gzip.compress(data, compresslevel=9),
    "br": lambda data: brotli.compress(data, quality=5),
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize("encoding", BOMBS)
def test_decompression_bomb_stops(encoding: str) -> None:
    cap = 256 * 1024
    body = BOMBS[encoding](b"data: ok\n\n" * 2_000_000)  # 20 MB of events
    assert len(body) < 200 * 1024
    scanner = _scanner(encoding, max_total_bytes=cap)
    out = _run(scanner, _chunks(body, 4096))
    assert out.endswith(_stop_event("unscannable"))
    assert out.count(b"data: ok\n\n") <= cap // 10
    assert "limit" in scanner.stopped.note and scanner.stopped.event is None
    assert len(scanner.captured) <= cap


@pytest.mark.parametrize("body, note", [
    (gzip.compress(b"data: a\n\n")[:-4], "truncated `gzip` stream"),
    (gzip.compress(b"data: a\n\n") + b"junk", "data after the end of the `gzip` stream"),
    (b"not gzip at all", "malformed compressed stream"),
])
def test_broken_gzip_stops(body: bytes, note: str) -> None:
    scanner = _scanner("gzip")
    out = _run(scanner, _chunks(body, 5))
    assert out.endswith(_stop_event("unscannable"))
    assert scanner.stopped.note.startswith(note)


# --- entities spread over several events -------------------------------------------------------


def _delta(token: str, stream_id: str = "chatcmpl-1") -> bytes:
    doc = {"id": stream_id, "choices": [{"index": 0, "delta": {"content": token}}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def test_quarantine_entity_streamed_token_by_token_stops_before_the_last_piece() -> None:
    tokens = ["My", " number", " is", " 536", "-22", "-", "8726", ", thanks"]
    scanner = _scanner()
    out = _run(scanner, [_delta(t) for t in tokens])
    assert out == b"".join(_delta(t) for t in tokens[:6]) + _stop_event("quarantine")
    assert scanner.stopped.note == "quarantined entity split across events: US_SSN"
    assert [r.field for r in scanner.stopped.records] == ["response.events[6].data"]


def test_unchanging_fields_are_not_joined() -> None:
    # "8726 id 536-22-" twice reads "…536-22-8726…": a repeated id is no delta, so no stop
    events = [_delta(t, stream_id="8726 id 536-22-") for t in ("a", "b", "c")]
    scanner = _scanner()
    assert _run(scanner, events) == b"".join(events)
    assert scanner.stopped is None


def test_joining_can_be_turned_off() -> None:
    tokens = [" 536", "-22", "-", "8726"]
    events = [_delta(t) for t in tokens]
    assert _run(_scanner(join_events=False), events) == b"".join(events)


# --- the policy's own recognizers ----------------------------------------------------------------

ACME = RecognizerSpec("ACME_ACCOUNT_ID", r"\bACME-\d{8}\b", 0.9)


def _acme(action: str) -> StreamScanner:
    lists = {"redact": ("ACME_ACCOUNT_ID",)} if action == "redact" else {
        "quarantine": ("ACME_ACCOUNT_ID",)}
    settings = ScanSettings(tier="patterns", detect=(), recognizers=(ACME,), **lists)
    return StreamScanner(settings, None, MAX_EVENT)


def test_a_policy_recognizer_entity_in_an_event_is_redacted() -> None:
    scanner = _acme("redact")
    out = _run(scanner, [_delta("account ACME-12345678 is open"),
                         b"id: ACME-87654321\ndata: {}\n\n"])
    delta = {"content": "account <ACME_ACCOUNT_ID> is open"}
    redacted = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta}]}
    assert out == (b"data: " + json.dumps(redacted, separators=(",", ":")).encode() + b"\n\n"
                   + b"id: <ACME_ACCOUNT_ID>\ndata: {}\n\n")
    assert [(r.field, r.reason, r.action) for r in scanner.records] == [
        ("response.events[0].data.choices[0].delta.content", "ACME_ACCOUNT_ID", Action.REDACTED),
        ("response.events[1].id", "ACME_ACCOUNT_ID", Action.REDACTED)]


def test_a_policy_quarantine_entity_split_across_events_stops_the_stream() -> None:
    tokens = ["Your account is ACME-", "1234", "5678", " - keep it safe"]
    scanner = _acme("quarantine")
    out = _run(scanner, [_delta(t) for t in tokens])
    assert out == b"".join(_delta(t) for t in tokens[:2]) + _stop_event("quarantine")
    assert scanner.stopped.note == "quarantined entity split across events: ACME_ACCOUNT_ID"


def test_strings_repeated_across_events_are_not_scanned_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ids, model names and keys repeat in every event of an LLM stream: after the first event
    they come from the scanner's per-process cache (`scan.CACHED_CHARS`), so each later event
    scans its new delta (and the join window) only; no per-stream cache is needed."""
    from gateway.scan import scan

    def chunk(token: str) -> bytes:
        doc = {"id": "chatcmpl-9xYzAbCdEfGh", "object": "chat.completion.chunk",
               "created": 1718000000, "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}
        return b"data: " + json.dumps(doc).encode() + b"\n\n"

    scanned: list[str] = []
    real = scan._scan_uncached
    monkeypatch.setattr(scan, "_scan_uncached",
                        lambda engine, texts, min_score: scanned.extend(texts) or real(
                            engine, texts, min_score))
    scanner = _scanner()
    scanner.feed(chunk("Hello"))
    scanned.clear()
    for token in (" there", ", how", " are", " you"):
        scanner.feed(chunk(token))
    repeated = {"chatcmpl-9xYzAbCdEfGh", "chat.completion.chunk", "1718000000",
                "gpt-4o-mini-2024-07-18", "id", "object", "created", "model", "choices",
                "index", "delta", "content", "finish_reason", "0"}
    assert scanned and not repeated & set(scanned), scanned
