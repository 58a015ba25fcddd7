"""A response body is decoded, read as JSON, text or binary, and judged; what cannot be read is
never passed."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import replace

import brotli
import orjson
import pytest
import zstandard

from gateway.scan.body import judge_response
from gateway.scan.redact import Outcome
from gateway.scan.settings import ScanSettings

SETTINGS = ScanSettings(tier="patterns", detect=("EMAIL_ADDRESS", "US_SSN"),
                        redact=("EMAIL_ADDRESS",), quarantine=("US_SSN",))
RECORD = orjson.dumps({"customer": {"email": "jane.doe@example.com", "plan": "pro"}})
REDACTED = {"customer": {"email": "<EMAIL_ADDRESS>", "plan": "pro"}}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


@pytest.mark.parametrize("encoding,encode", [
    (None, lambda b: b),
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("br", brotli.compress),
    ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
])
def test_json_is_redacted_whatever_its_encoding(encoding, encode) -> None:  # type: ignore[no-untyped-def]
    result = judge_response(encode(RECORD), "application/json", encoding, SETTINGS)
    assert result.outcome is Outcome.REDACTED
    assert result.body is not None and orjson.loads(result.body) == REDACTED
    assert result.records == [{"field": "response.customer.email", "reason": "EMAIL_ADDRESS",
                               "score": 1.0, "action": "redacted", "part": "value"}]


def test_a_quarantine_entity_holds_the_body_and_shows_the_redacted_view() -> None:
    body = orjson.dumps({"customer": {"ssn": "536-22-8726", "email": "jane.doe@example.com"}})
    result = judge_response(body, "application/json; charset=utf-8", None, SETTINGS)
    assert result.outcome is Outcome.QUARANTINE
    assert result.body is not None
    assert orjson.loads(result.body) == {
        "customer": {"ssn": "<US_SSN>", "email": "<EMAIL_ADDRESS>"}}


@pytest.mark.parametrize("raw,encoding,note", [
    (gzip.compress(b"{" + b" " * 2_000_000 + b"}"), "gzip",
     "decoded `gzip` body exceeds the 1048576-byte limit"),
    (RECORD, "compress", "unknown content encoding `compress`"),
    (b"not gzip at all", "gzip", "malformed `gzip` body"),
])
def test_bodies_that_cannot_be_decoded_are_unscannable(raw: bytes, encoding: str,
                                                       note: str) -> None:
    settings = replace(SETTINGS, max_body_bytes=1024 * 1024)
    result = judge_response(raw, "application/json", encoding, settings)
    assert result.outcome is Outcome.UNSCANNABLE
    assert result.body is None
    assert result.note is not None and result.note.startswith(note)


def test_text_is_scanned_in_its_declared_charset_and_written_back_in_it() -> None:
    text = "Grüße an jane.doe@example.com".encode("latin-1")
    result = judge_response(text, "text/plain; charset=ISO-8859-1", None, SETTINGS)
    assert result.outcome is Outcome.REDACTED
    assert result.body == "Grüße an <EMAIL_ADDRESS>".encode("latin-1")


def test_an_unknown_charset_is_unscannable() -> None:
    result = judge_response(b"hello", "text/plain; charset=klingon", None, SETTINGS)
    assert (result.outcome, result.note) == (Outcome.UNSCANNABLE, "unknown charset `klingon`")


def test_json_labelled_as_an_image_is_still_scanned() -> None:
    result = judge_response(RECORD, "image/png", None, SETTINGS)
    assert result.outcome is Outcome.REDACTED


@pytest.mark.parametrize("binary,outcome", [("allow", Outcome.PASS),
                                            ("quarantine", Outcome.QUARANTINE)])
def test_binary_bodies_follow_the_binary_policy(binary: str, outcome: Outcome) -> None:
    result = judge_response(PNG, "image/png", None, replace(SETTINGS, binary=binary))
    assert result.outcome is outcome
    assert result.note == f"binary body {'passed' if binary == 'allow' else 'held'} by " \
                          "`responses.binary`"
