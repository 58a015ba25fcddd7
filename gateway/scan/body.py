"""Judge one whole response body: decode it, pick how to read it, scan it under the settings.

This is what a scanning worker runs for a buffered response. Everything it cannot read ends as
`unscannable` (the caller quarantines it): a body over the cap once decoded, an unknown or
malformed `Content-Encoding`, a charset nobody knows. What it reads:
- JSON (`application/json`, `*+json`): every key and value, redacted in place (`redact.scan_json`);
- anything else that decodes as text (its declared charset, else UTF-8), whatever its label, so a
  JSON body labelled `image/png` is scanned all the same;
- the rest is binary and `settings.binary` decides: passed as it is, or quarantined.

`judge_responses` judges several bodies together (`redact.judge_all`): what a worker does with
the bodies that were waiting when it became free.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import replace

from gateway.content import UndecodableBody, decode_body
from gateway.scan.redact import (
    DEFAULT_LIMITS,
    Outcome,
    Result,
    Steps,
    Verdict,
    json_steps,
    judge_all,
    text_steps,
)
from gateway.scan.settings import ScanSettings


def _media(content_type: str | None) -> tuple[str, str | None]:
    """`application/json; charset=utf-8` → (`application/json`, `utf-8`)."""
    media, _, params = (content_type or "").partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return media.strip().lower(), charset


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _text(body: bytes, charset: str | None) -> str | None:
    """The body as text in its declared charset (UTF-8 when none), or None when it is not."""
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        raise UndecodableBody(f"unknown charset `{charset}`") from None
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _result(outcome: Outcome, body: bytes | None, note: str) -> Result:
    return Result(Verdict(outcome), body, note)


# What a worker is asked: the body as received, its Content-Type and Content-Encoding, settings.
Request = tuple[bytes, str | None, str | None, ScanSettings]


def judge_response(
    raw: bytes, content_type: str | None, content_encoding: str | None, settings: ScanSettings
) -> Result:
    """The verdict on a response body as received; `Result.body` is the DECODED body to deliver
    (redacted when `outcome` is redacted) or to show reviewers (quarantine)."""
    return judge_all([_steps(raw, content_type, content_encoding, settings)])[0]


def judge_responses(requests: Sequence[Request]) -> list[Result]:
    """`judge_response` for each request, their texts scanned together."""
    return judge_all([_steps(*request) for request in requests])


def _steps(
    raw: bytes, content_type: str | None, content_encoding: str | None, settings: ScanSettings
) -> Steps:
    try:
        body = decode_body(raw, content_encoding, settings.max_body_bytes)
        media, charset = _media(content_type)
        text = _text(body, charset)
    except UndecodableBody as e:
        return _result(Outcome.UNSCANNABLE, None, str(e))
    if text is None:
        if settings.binary == "quarantine":
            return _result(Outcome.QUARANTINE, None, "binary body held by `responses.binary`")
        return _result(Outcome.PASS, body, "binary body passed by `responses.binary`")
    if not settings.detect:
        return _result(Outcome.PASS, body, "nothing to detect")
    limits = replace(DEFAULT_LIMITS, max_bytes=settings.max_body_bytes,
                     max_chars=settings.max_body_bytes)
    if is_json(media) and charset in (None, "utf-8", "utf8"):
        return (yield from json_steps(body, settings.tier, settings, limits))
    result = yield from text_steps(text, settings.tier, settings, limits)
    encoded = result.body.encode(charset or "utf-8") if isinstance(result.body, str) else None
    return Result(result.verdict, encoded, result.note)
