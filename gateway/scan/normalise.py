"""Undo the cheap disguises that would carry personal data past a regex, keeping an offset map.

Each step rewrites matches of one pattern; `Normalised.offsets[i]` is where normalised character
`i` starts in the original, so a finding on the normalised text maps back for redaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Zero-width characters, word joiner, invisible operators, BOM, Mongolian vowel separator and the
# soft hyphen: invisible in a rendered page, yet they break every digit or word pattern.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]+")
_JSON_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
                          r"|\\u([0-9a-fA-F]{4})")
_PERCENT = re.compile(r"(?:%[0-9a-fA-F]{2})+")
# A non-ASCII character with the combining marks that follow it: NFKC composes them together.
_NON_ASCII = re.compile(r"[^\x00-\x7f][\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff\ufe20-\ufe2f]*")
# Digits in groups joined by single separators: `536 22 8726`, `4111.1111.1111.1111`.
_DIGIT_RUN = re.compile(r"(?<![\w.\-])\d+(?:[ .\-]\d+)+(?![\w]|[.\-]\d)")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

Replacement = tuple[str, list[int] | None]


@dataclass(frozen=True, slots=True)
class Normalised:
    """Normalised text and, per character (plus one for the end), its start in the original."""

    text: str
    offsets: Sequence[int]  # a `range` while nothing was rewritten

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of normalised `[start, end)`."""
        return self.offsets[start], self.offsets[end]


def _identity(text: str) -> Normalised:
    return Normalised(text, range(len(text) + 1))


def _rewrite(
    current: Normalised, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], Replacement]
) -> Normalised:
    """Replace each match; `replace` may give per-character offsets relative to the match."""
    parts: list[str] = []
    offsets: list[int] = []
    last = 0
    src = current.offsets
    for match in pattern.finditer(current.text):
        new, rel = replace(match)
        start, end = match.span()
        if new == match.group(0) and rel is None:
            continue
        parts.append(current.text[last:start])
        offsets.extend(src[last:start])
        parts.append(new)
        if rel is None:
            offsets.extend([src[start]] * len(new))
        else:
            offsets.extend(src[start + r] for r in rel)
        last = end
    if not parts:
        return current
    parts.append(current.text[last:])
    offsets.extend(src[last:])
    return Normalised("".join(parts), offsets)


def _json_escape(match: re.Match[str]) -> Replacement:
    high, low, single = match.groups()
    if single is not None:
        return chr(int(single, 16)), None
    code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
    return chr(code), None


def _percent(match: re.Match[str]) -> Replacement:
    raw = bytes.fromhex(match.group(0).replace("%", ""))
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return match.group(0), None  # not text: leave it as written


def _nfkc(match: re.Match[str]) -> Replacement:
    return unicodedata.normalize("NFKC", match.group(0)), None


def _digit_run(match: re.Match[str]) -> Replacement:
    """Regroup separated digits the way the recognizers expect: SSN `ddd-dd-dddd`, cards bare."""
    run = match.group(0)
    positions = [i for i, c in enumerate(run) if c.isdigit()]
    digits = "".join(run[i] for i in positions)
    separators = len(run) - len(digits)
    if _IPV4.fullmatch(run):
        return run, None
    if len(digits) == 9 and separators >= 2:
        rel = positions[:3] + [positions[3]] + positions[3:5] + [positions[5]] + positions[5:]
        return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}", rel
    if 13 <= len(digits) <= 19:
        return digits, positions
    return run, None


def normalise(text: str) -> Normalised:
    """Decode escapes, fold compatibility forms and drop invisible characters (text order kept)."""
    current = _identity(text)
    if "\\u" in text:
        current = _rewrite(current, _JSON_ESCAPE, _json_escape)
    if "%" in current.text:
        current = _rewrite(current, _PERCENT, _percent)
    if not current.text.isascii():
        current = _rewrite(current, _INVISIBLE, lambda m: ("", None))
        current = _rewrite(current, _NON_ASCII, _nfkc)
        current = _rewrite(current, _INVISIBLE, lambda m: ("", None))
    return current


def regroup_digits(current: Normalised) -> Normalised:
    """A second view with separated digit groups regrouped; the first view keeps IBANs, IPs, ..."""
    return _rewrite(current, _DIGIT_RUN, _digit_run)
