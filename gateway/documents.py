"""Documents an agent fetched, as evidence: where from, their hash, and instruction-like text.

A prompt injection usually arrives in something the agent read (a web page, a ticket, a README)
and shows in the text as an instruction to the model. The phrases below are the common tells;
a match is a flag for a responder to look at, not a verdict. Text is normalised first
(`gateway.scan.normalise`: escapes, NFKC, zero-width characters) so the evasions that would
hide personal data do not hide an instruction either.
"""

from __future__ import annotations

import re

from gateway.scan.normalise import normalise

TEXT_TYPES = ("text/html", "text/plain", "text/markdown", "application/xhtml+xml",
              "text/xml", "application/xml", "text/csv")
SCANNED_CHARS = 1_000_000  # instruction-like text is looked for in the first million chars

_INSTRUCTIONS = [
    r"ignore\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|preceding)\s+"
    r"(?:instructions|prompts?|directions|rules)",
    r"disregard\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|your)\s+"
    r"(?:instructions|prompts?|rules)",
    r"forget\s+(?:all\s+|everything\s+)?(?:you\s+were\s+told|your\s+instructions)",
    r"you\s+are\s+now\s+(?:a|an|in)\s+",
    r"new\s+instructions\s*:",
    r"(?:reveal|print|show)\s+(?:your|the)\s+system\s+prompt",
    r"do\s+not\s+(?:tell|inform|mention\s+(?:this\s+)?to)\s+the\s+user",
    r"<\s*/?\s*(?:system|im_start|im_end)\s*>",
    r"\bassistant\s*:\s*(?:sure|ok)\b",
]
INSTRUCTION_LIKE = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTIONS), re.IGNORECASE)


def is_document(content_type: str | None, method: str) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return method in ("GET", "HEAD") and media in TEXT_TYPES


def instruction_flags(text: str, limit: int = 5) -> list[str]:
    """The instruction-like phrases found in `text`, as written (at most `limit`)."""
    found: list[str] = []
    for match in INSTRUCTION_LIKE.finditer(normalise(text[:SCANNED_CHARS]).text):
        phrase = " ".join(match.group(0).split())
        if phrase.lower() not in (f.lower() for f in found):
            found.append(phrase)
            if len(found) == limit:
                break
    return found
