"""Cheap tests that tell when a recognizer cannot possibly match a text, so it is not run there.

Each test is a NECESSARY condition read off the recognizer's own patterns (Presidio 2.2.366, and
Gatehouse's in `recognizers`): a text that fails it cannot hold a match, so skipping the
recognizer never loses a finding.
A recognizer without a test here (a policy's own, or one added by a later Presidio) always runs.
Tests see the normalised text (escapes decoded, NFKC applied); `\\d` counts any Unicode digit, a
superset of the `[0-9]` most patterns use, and letter classes are compared case-insensitively as
Presidio's flags do.

`is_free_text` picks the strings worth the NER model: identifiers, numbers, timestamps, URLs and
snake_case or lower case enum values are not (see its docstring for what exactly is kept).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

Test = Callable[[str], bool]

_DIGIT = re.compile(r"\d")


@functools.lru_cache(maxsize=4096)
def digit_count(text: str) -> int:
    """How many digits `text` has (several tests ask about one text in a row)."""
    return len(_DIGIT.findall(text))


def _digits(minimum: int) -> Test:
    """At least `minimum` digits anywhere in the text."""

    def test(text: str) -> bool:
        return len(text) >= minimum and digit_count(text) >= minimum

    return test


def _search(pattern: str) -> Test:
    return re.compile(pattern, re.IGNORECASE).search  # type: ignore[return-value]


# Whole texts that are one machine token and hold no phone number: an ISO 8601 date or
# timestamp, a UUID, a hex digest, an amount with at most two decimals. The one exception to
# "necessary conditions only", by choice: these shapes are most of the digits in API bodies, and
# Presidio does report a "phone number" in some of them (`04.009429` in
# `2008-10-19T07:42:04.009429`, the amount `40621830.18`): false positives, not lost findings.
# The last two are necessary conditions of `recognizers.PhoneNumberRecognizer`, which takes
# neither a dotted IPv4 address nor a bare run of under ten digits without a leading 0.
_NO_PHONE = re.compile(
    r"""\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d{1,9})?)?(?:Z|[+-]\d\d:?\d\d)?)?
    | [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}
    | (?=[0-9a-f]*[a-f])[0-9a-f]{16,}
    | [+-]?\d+\.\d{1,2}
    | \d{1,3}(?:\.\d{1,3}){3}
    | [1-9]\d{0,8}
    """,
    re.IGNORECASE | re.VERBOSE,
)
# Every number phonenumbers accepts as valid has at least 4 national digits (the shortest in the
# regions Presidio checks, DE); with a country code it is longer still.
_PHONE_DIGITS = _digits(4)


def _phone(text: str) -> bool:
    return _PHONE_DIGITS(text) and not _NO_PHONE.fullmatch(text)


# Entity type → necessary condition; the reason is the shortest match of the recognizer's patterns.
TESTS: dict[str, Test] = {
    # 12 digits (Maestro) at least; Presidio's own pattern 4 + 3 + 3 + 3
    "CREDIT_CARD": _digits(12),
    # \d{3}-\d{2}-\d{4}, \d{9}, \d{5}-\d{4}, \d{3}-\d{6}: nine digits in every form
    "US_SSN": _digits(9),
    "US_ITIN": _digits(9),
    "US_BANK_NUMBER": _digits(8),  # [0-9]{8,17}
    "US_PASSPORT": _digits(8),  # [0-9]{9} or [A-Z][0-9]{8}
    "UK_NHS": _digits(10),  # 3 + 3 + 4
    "MEDICAL_LICENSE": _digits(7),  # two letters and 7 digits, or a letter, 9 and 7 digits
    "US_DRIVER_LICENSE": _digits(1),  # every alternative has a digit
    "DATE_TIME": _digits(1),  # every pattern has a day, month number or year
    "PHONE_NUMBER": _phone,
    "EMAIL_ADDRESS": lambda text: "@" in text,
    "URL": lambda text: "." in text,
    # IPv4 has three dots; every IPv6 form has `::` or else all seven (six before an IPv4) colons
    "IP_ADDRESS": lambda t: "::" in t or t.count(":") >= 6 or t.count(".") >= 3,
    # six hex pairs joined by one repeated `:` or `-`, or three quads joined by `.`
    "MAC_ADDRESS": lambda t: t.count(":") >= 5 or t.count("-") >= 5 or t.count(".") >= 2,
    "UUID": lambda text: text.count("-") >= 4,
    # two letters, two check digits, then at least eight more characters
    "IBAN_CODE": _search(r"[A-Z]{2}[0-9]{2}"),
    # bc1 or 1 or 3, then 25 or more letters and digits
    "CRYPTO": _search(r"[a-z0-9]{26}"),
}


def needs(entities: frozenset[str], text: str) -> bool:
    """Whether any of `entities` could be in `text` (an entity without a test: always)."""
    for entity in entities:
        test = TESTS.get(entity)
        if test is None or test(text):
            return True
    return False


# Shapes that are one token of machine data, never prose: no name or place is in them.
_MACHINE = re.compile(
    r"""[+-]?\d[\d.,:_/+\-]*[a-z%]{0,3}            # numbers, amounts, dates, times, versions
    | [0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}  # UUIDs
    | \d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?  # ISO 8601
    | [a-z][a-z0-9+.\-]*://\S*                      # URLs
    | [^\s@]+@[^\s@]+                               # e-mail addresses (the patterns see them)
    | [a-z0-9]+(?:[_\-.:/][a-z0-9]+)+               # snake_case, kebab-case, dotted, paths
    | [a-z0-9]*\d[a-z0-9]*                          # ids mixing letters and digits
    | [a-z]+                                        # a lower case word: an enum value or key
    """,
    re.IGNORECASE | re.VERBOSE,
)
_HAS_LETTER = re.compile(r"[^\W\d_]")


def is_free_text(text: str) -> bool:
    """Whether the NER model should read `text`: anything with a letter except one machine token.

    Skipped: texts without a letter, and single tokens (no whitespace) that are numbers, UUIDs,
    ISO timestamps, URLs, e-mail addresses, snake/kebab/dotted identifiers, ids mixing letters
    and digits, or an all-lower-case word. Kept: anything with whitespace, and a single word
    with a capital (`Philip`, `Chicago`, `O'Brien`), which may be a name or a place.
    """
    if not _HAS_LETTER.search(text):
        return False
    stripped = text.strip()
    if len(stripped.split(None, 1)) > 1:  # whitespace inside (`split` and `isspace` agree)
        return True
    if _MACHINE.fullmatch(stripped) and not _capitalised_word(stripped):
        return False
    return True


def _capitalised_word(token: str) -> bool:
    return token[:1].isupper() and token.replace("'", "").replace("-", "").isalpha()
