"""Gatehouse's card and phone recognizers, in place of Presidio's (2.2.366) for two entity types.

`CardRecognizer` (CREDIT_CARD) is Presidio's `CreditCardRecognizer` plus a second pattern for the
card numbers its pattern cannot match: Mastercard's 2-series (2221–2720), Maestro's 12 to 19
digits, 19-digit Visa, 15-digit JCB (2131, 1800), Mir, UnionPay and Discover up to 19 digits.
What Presidio's pattern matches is judged as Presidio judges it (Luhn only); what only the second
pattern matches must also start with an issuer range known for its length (`known_card`).

`PhoneNumberRecognizer` (PHONE_NUMBER) finds what Presidio's `PhoneRecognizer` finds, searching
each text once instead of once per region (8) and parsing a candidate only for the regions it
could be valid in, usually one or none; Presidio's spent about 0.3 ms on each text with digits.
It differs on purpose in two ways:
- it also takes North American numbers by their written shape (`NANP_SHAPE`), valid or not: a
  made-up area code (`(569) 798-2887`) still reads as someone's phone to an agent;
- it leaves alone shapes phonenumbers takes for some region's number (mostly German ones, which
  have 4 to 15 digits) but which are other data: a dotted IPv4 address, an SSN-shaped
  `021-02-4860`, digits glued to a word (`ORD-02125913`), a card number, and a bare run of
  under ten digits without a leading 0 (a count or an id; nobody writes a phone number so).
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

import phonenumbers
from phonenumbers import (
    Leniency,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberMatch,
    PhoneNumberMatcher,
)
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonenumberutil import NumberParseException
from presidio_analyzer import EntityRecognizer, Pattern
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, PhoneRecognizer

# Issuer ranges: (lowest prefix, highest prefix, card lengths). A number is in a range when its
# first len(lowest) digits lie between the two. Sources: the card networks' published ranges
# (ISO/IEC 7812 IINs), as listed in Wikipedia's "Payment card number" table. Faker's Maestro
# prefix `0604` is not one: no network issues cards under a leading 0 (ISO/TC 68 keeps it), and
# German phone numbers of the 06041–06049 areas begin the same way.
_NINETEEN = tuple(range(16, 20))
ISSUER_RANGES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("6011", "6011", _NINETEEN),  # Discover
    ("644", "649", _NINETEEN),
    ("65", "65", _NINETEEN),
    ("300", "305", tuple(range(14, 20))),  # Diners Club
    ("3095", "3095", tuple(range(14, 20))),
    ("36", "36", tuple(range(14, 20))),
    ("38", "39", _NINETEEN),
    ("3528", "3589", _NINETEEN),  # JCB
    ("1800", "1800", (15,)),  # JCB's 15-digit ranges
    ("2131", "2131", (15,)),
    ("62", "62", _NINETEEN),  # UnionPay
    ("2200", "2204", _NINETEEN),  # Mir
    ("50", "50", tuple(range(12, 20))),  # Maestro: Mastercard's debit ranges 50 and 56–69
    ("56", "69", tuple(range(12, 20))),
)
_BY_LENGTH: dict[int, tuple[tuple[str, str], ...]] = {
    n: tuple((low, high) for low, high, lengths in ISSUER_RANGES if n in lengths)
    for n in range(12, 20)
}

# Presidio's own card pattern: 13 to 17 digits, starting 1, 3, 4, 5[0-5] or 6.
_PRESIDIO = CreditCardRecognizer.PATTERNS[0]
_PRESIDIO_SHAPE = re.compile(_PRESIDIO.regex.removeprefix(r"\b").removesuffix(r"\b"))
# Card numbers as written: bare, in fours with one kind of separator (the last group shorter),
# or 4-6-4 / 4-6-5 (Diners, Amex). How many digits, and which, is `known_card`'s to judge.
_WIDE = (
    r"\b(?:\d{12,19}"
    r"|\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?)?"
    r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5})\b"
)


def luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number carries in its last digit."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def known_card(digits: str) -> bool:
    """Whether `digits` (digits only) start with an issuer range known for their length."""
    for low, high in _BY_LENGTH.get(len(digits), ()):
        if low <= digits[: len(low)] <= high:
            return True
    return False


def is_card_number(digits: str) -> bool:
    """A card number: 12 to 19 digits from a known issuer range, with the Luhn checksum."""
    digits = _ascii(digits)
    return bool(digits) and known_card(digits) and luhn(digits)


def _ascii(digits: str) -> str:
    """Any Unicode decimal digits as ASCII ones ("" when there is anything else)."""
    if not digits.isdecimal():
        return ""
    return digits if digits.isascii() else "".join(str(int(c)) for c in digits)


class CardRecognizer(CreditCardRecognizer):
    """Presidio's card recognizer with a wider, issuer-checked pattern (see the module)."""

    PATTERNS = [_PRESIDIO, Pattern("Card numbers by issuer range", _WIDE, _PRESIDIO.score)]

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None,  # type: ignore[no-untyped-def]
                regex_flags: int | None = None):
        """Digit groups glued by `-` or `_` to more of a token are part of an identifier (a
        UUID's `6477-4999-8355`, an order id's `ORD-697988633205`), not a card number; and a
        bare 12-digit run (an id far more often than a Maestro card) needs a card word before
        it."""
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in found if not _glued(text, r.start, r.end)
                and (r.end - r.start != 12 or _card_words(text[max(0, r.start - 40):r.start]))]

    def validate_result(self, pattern_text: str) -> bool:
        digits = _ascii(pattern_text.replace("-", "").replace(" ", ""))
        if not digits or not luhn(digits):
            return False
        return bool(_PRESIDIO_SHAPE.fullmatch(pattern_text)) or known_card(digits)


_CARD_WORDS = re.compile(r"card|maestro|debit|credit|\bpan\b", re.IGNORECASE)


def _card_words(before: str) -> bool:
    return _CARD_WORDS.search(before) is not None


def _glued(text: str, start: int, end: int) -> bool:
    before = start >= 2 and text[start - 1] in "-_" and text[start - 2].isalnum()
    after = end + 1 < len(text) and text[end] in "-_" and text[end + 1].isalnum()
    return before or after


# --- Phone numbers -------------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")
# Shapes the phone recognizer leaves alone, though phonenumbers may take them for a number of some
# region (most often a German one: DE numbers have 4 to 15 digits): a dotted IPv4 address, a US
# SSN (`021-02-4860`), digits glued to a word by `-`, `_` or `/` (`ORD-02125913`, `cus_5551234`,
# `/tickets/4072`), and a digit run that is a card number (`is_card_number`).
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_GLUE = frozenset("-_/")
# A North American number as people write it: the area code and the exchange start 2-9 and are
# set apart (brackets or separators), optionally after +1 / 1 / 001 / 011 and before an extension.
NANP_SHAPE = re.compile(
    r"""(?:(?:\+|00|011)[ .\-]?)?(?:1[ .\-]?)?
    (?:\((?P<area>[2-9]\d\d)\)[ .\-]?|(?P<area2>[2-9]\d\d)[ .\-])
    (?P<exchange>[2-9]\d\d)[ .\-](?P<line>\d{4})
    (?:[ ]?(?:x|ext\.?|extension|\#)[ ]?\d{1,6})?""",
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)


@functools.cache
def _general(country_code: int) -> dict[int, re.Pattern[str]]:
    """National significant number length → the patterns any region of `country_code` accepts.

    `is_valid_number` needs the national number to have one of its region's possible lengths
    and to match the region's general pattern (`general_desc`) before anything else.
    """
    by_length: dict[int, list[str]] = {}
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]:
        desc = PhoneMetadata.metadata_for_region(region).general_desc
        for length in desc.possible_length:
            by_length.setdefault(length, []).append(desc.national_number_pattern)
    return {n: re.compile("|".join(f"(?:{p})" for p in ps)) for n, ps in by_length.items()}


@functools.cache
def _region(region: str) -> tuple[int, re.Pattern[str] | None]:
    metadata = PhoneMetadata.metadata_for_region(region)
    idd = metadata.international_prefix
    return metadata.country_code, re.compile(idd) if idd else None


# parse() strips at most a country code and a national prefix with a carrier code before the
# national significant number (GB's longest prefix is `180020`): the number is one of these
# suffixes of its digits.
_PREFIX_DIGITS = 6


def could_be_valid(digits: str, region: str) -> bool:
    """Whether `parse(number, region)` of a national number (`digits`: its digits after the
    extension is taken off) could give a number `is_valid_number` accepts.

    A necessary condition, so skipping the parse when it is false loses nothing: what `parse`
    keeps is a suffix of the digits (after an international prefix, a country code or a
    national prefix), and a valid number's length and general pattern fit its country code.
    """
    country_code, idd = _region(region)
    if idd is not None and idd.match(digits):
        return True  # an international prefix: any country code may follow
    general = _general(country_code)
    code = str(country_code)
    starts = set(range(_PREFIX_DIGITS + 1))
    if digits.startswith(code):
        starts.update(range(len(code), len(code) + _PREFIX_DIGITS + 1))
    for start in starts:
        rest = digits[start:]
        pattern = general.get(len(rest))
        if pattern is not None and pattern.fullmatch(rest):
            return True
    return False


def _read(candidate: str) -> tuple[str, bool] | None:
    """The digits `parse` reads of `candidate` (no extension) and whether a plus sign leads them;
    None when this cannot be told cheaply (a vanity number with letters)."""
    try:
        number = pnu._build_national_number_for_parsing(candidate)
    except NumberParseException:
        return "", False
    _, number = pnu._maybe_strip_extension(number)
    if pnu._VALID_ALPHA_PHONE_PATTERN.match(number):
        return None
    return pnu.normalize_digits_only(number), bool(pnu._PLUS_CHARS_PATTERN.match(number))


@functools.cache
def _one_per_country_code(regions: tuple[str, ...]) -> list[str]:
    codes: set[int] = set()
    kept: list[str] = []
    for region in regions:
        code = _region(region)[0]
        if code not in codes:
            codes.add(code)
            kept.append(region)
    return kept


class _Matcher(PhoneNumberMatcher):
    """phonenumbers' matcher over several regions at once: each candidate is found once, then
    parsed for the regions it could be valid in (`could_be_valid`), the first valid one wins.
    A candidate in North American shape (`NANP_SHAPE`) is a match without parsing when
    `nanp_shaped` is set, valid or not.

    One parse serves every region when the number starts with a plus sign. Regions that share
    a country code with an earlier one are not tried for national numbers (CA after US: parsing
    a national number for either gives the same number).
    """

    def __init__(self, text: str, regions: tuple[str, ...], leniency: int,
                 nanp_shaped: bool) -> None:
        # No limit on failed candidates (phonenumbers stops after 65535 by default): a long text
        # with many digit groups must not hide the numbers at its end.
        super().__init__(text, regions[0], leniency=leniency, max_tries=sys.maxsize)
        self.national = _one_per_country_code(regions)
        self.first = regions[0]
        self.nanp_shaped = nanp_shaped
        self.screen = leniency >= Leniency.VALID  # `could_be_valid` is about valid numbers

    def _parse_and_verify(self, candidate, offset):  # type: ignore[no-untyped-def]
        if len(_DIGIT.findall(candidate)) < 4 or self._not_a_phone(candidate, offset):
            return None
        if self.nanp_shaped and (shape := NANP_SHAPE.fullmatch(candidate)):
            return self._shaped(shape, offset)  # a match whether phonenumbers knows it or not
        read = _read(candidate)
        if read is None:
            regions = self.national
        elif read[1]:
            regions = [self.first]  # after a plus sign the region plays no part
        elif self.screen:
            regions = [r for r in self.national if could_be_valid(read[0], r)]
        else:
            regions = self.national
        for region in regions:
            self.preferred_region = region
            match = super()._parse_and_verify(candidate, offset)
            if match is not None:
                return match
        return None

    def _extract_inner_match(self, candidate, offset):  # type: ignore[no-untyped-def]
        # phonenumbers looks for a number inside a candidate split at brackets, slashes, dashes,
        # dots or spaces: a candidate of digits alone has none of them
        if candidate.isdigit():
            return None
        return super()._extract_inner_match(candidate, offset)

    def _not_a_phone(self, candidate: str, offset: int) -> bool:
        if _IPV4.fullmatch(candidate) or _SSN_SHAPE.fullmatch(candidate):
            return True
        if offset >= 2 and self.text[offset - 1] in _GLUE and self.text[offset - 2].isalpha():
            return True
        if candidate.isdigit():  # bare digits: a short run is a count or an id; or a card
            if len(candidate) < 10 and candidate[0] != "0":
                return True
            return 12 <= len(candidate) <= 19 and is_card_number(candidate)
        return False

    def _shaped(self, shape: re.Match[str], offset: int) -> PhoneNumberMatch | None:
        """A match for a NANP-shaped candidate, valid or not, without parsing it; what surrounds
        it is checked as phonenumbers checks it at VALID leniency (no letter, `%` or currency
        sign next to it)."""
        candidate = shape.group()
        before = self.text[offset - 1] if offset > 0 else ""
        after = self.text[offset + len(candidate) : offset + len(candidate) + 1]
        for char in (before, after):
            if char and (self._is_invalid_punctuation_symbol(char) or self._is_latin_letter(char)):
                return None
        area = shape["area"] or shape["area2"]
        national = int(area + shape["exchange"] + shape["line"])
        return PhoneNumberMatch(offset, candidate, PhoneNumber(country_code=1,
                                                               national_number=national))


class PhoneNumberRecognizer(PhoneRecognizer):
    """Presidio's `PhoneRecognizer` (same regions, leniency, score and context), cheaper, with
    the exceptions and the North American shapes of `_Matcher` (see `NANP_SHAPE`).

    Presidio runs phonenumbers' matcher once per region (8), and the matcher parses each digit
    group of the text for each; here the text is searched once and a candidate is parsed only
    for the regions it could be valid in, usually one.
    """

    def __init__(self, *args: Any, nanp_shaped: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nanp_shaped = nanp_shaped

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None):  # type: ignore[no-untyped-def]
        results = []
        regions = tuple(self.supported_regions)
        matcher = _Matcher(text, regions, self.leniency, self.nanp_shaped)
        for match in matcher:
            region = phonenumbers.region_code_for_country_code(match.number.country_code)
            results.append(self._get_recognizer_result(match, text, region, nlp_artifacts))
        return EntityRecognizer.remove_duplicates(results)
