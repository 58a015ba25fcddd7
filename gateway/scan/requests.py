"""Outbound DLP: which of the entity types rules ask about a request carries (URL and body).

Used before deciding on a call and again when a reviewer approves it (the running policy is
re-checked on the exact stored bytes). None means it cannot be told: a body that is binary,
undecodable, too large, or that the scanner failed on; rules treat that as "may contain".
"""

from __future__ import annotations

from gateway.policy.schema import Responses
from gateway.scan.pool import ScanPool
from gateway.scan.settings import request_settings


async def request_entities(scanner: ScanPool, responses: Responses, wanted: frozenset[str], *,
                           url: str, body: bytes, content_type: str | None,
                           content_encoding: str | None) -> frozenset[str] | None:
    from gateway.scan.redact import Outcome  # loads Presidio: only where requests are scanned

    settings = request_settings(responses, wanted)
    parts = [(url.encode("utf-8", "surrogateescape"), "text/plain", None)]
    if body:
        parts.append((body, content_type, content_encoding))
    found: set[str] = set()
    for data, media, encoding in parts:
        result = await scanner.judge(data, media, encoding, settings)
        if result.outcome in (Outcome.QUARANTINE, Outcome.UNSCANNABLE):
            return None  # binary or unreadable: it may carry anything
        found.update(record["reason"] for record in result.records)
    return frozenset(found)
