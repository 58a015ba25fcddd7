"""The patterns tier: Presidio's regex and checksum recognizers, no model."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import orjson
import phonenumbers
import pytest
from faker import Faker
from phonenumbers import PhoneNumberFormat as PNF
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from gateway.scan import prefilter
from gateway.scan.analyzer import Tier, covered_entities, get_analyzer
from gateway.scan.normalise import normalise, regroup_digits
from gateway.scan.recognizers import (
    NANP_SHAPE,
    PhoneNumberRecognizer,
    could_be_valid,
    is_card_number,
    known_card,
    luhn,
)
from gateway.scan.scan import Finding, _merge, scan_text, scan_texts
from tests.bench.bench_scanner import pool


def _found(text: str, entity: str) -> list[str]:
    return [text[f.start : f.end] for f in scan_text(text, Tier.PATTERNS, [entity])]


@pytest.mark.parametrize(
    ("entity", "text", "value"),
    [
        ("EMAIL_ADDRESS", "write to jane.doe@example.org today", "jane.doe@example.org"),
        ("PHONE_NUMBER", "call +1 415-555-2671 after six", "+1 415-555-2671"),
        ("US_SSN", "ssn 536-22-8726 on file", "536-22-8726"),
        ("CREDIT_CARD", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
        ("CREDIT_CARD", "card 5500005555555559", "5500005555555559"),
        ("IBAN_CODE", "pay to DE89 3704 0044 0532 0130 00 now", "DE89 3704 0044 0532 0130 00"),
        ("IBAN_CODE", "pay to GB29NWBK60161331926819 now", "GB29NWBK60161331926819"),
    ],
)
def test_structured_entities_found(entity: str, text: str, value: str) -> None:
    assert _found(text, entity) == [value]


def test_luhn_invalid_card_is_not_reported() -> None:
    assert _found("card 4111 1111 1111 1112", "CREDIT_CARD") == []
    assert _found("card 4111-1111-1111-1112", "CREDIT_CARD") == []


def _card(prefix: str, length: int) -> str:
    """A number of `length` digits starting with `prefix`, its last digit the Luhn check."""
    body = prefix + "7" * (length - len(prefix) - 1)
    return next(body + d for d in "0123456789" if luhn(body + d))


@pytest.mark.parametrize(
    ("prefix", "length"),
    [("2221", 16), ("2720", 16), ("5018", 12), ("6759", 19), ("4", 19), ("2131", 15),
     ("2200", 16), ("6011", 19), ("62", 18), ("36", 14), ("4", 13), ("34", 15)],
)
def test_cards_presidios_pattern_misses_are_found_bare_and_grouped(prefix: str,
                                                                   length: int) -> None:
    number = _card(prefix, length)
    assert known_card(number)
    assert _found(f"card {number} exp 12/29", "CREDIT_CARD") == [number]
    fours = " ".join(number[i : i + 4] for i in range(0, length, 4))
    assert _found(f"card {fours} exp", "CREDIT_CARD") == [fours]
    assert _found(f"card {fours.replace(' ', '-')}.", "CREDIT_CARD") == [fours.replace(" ", "-")]


@pytest.mark.parametrize("text", [
    "id bd6ec690-6477-4999-8355-4dc0211eb6d8",  # a UUID's middle groups
    "order ORD-" + _card("6759", 12), "order " + _card("6759", 12),  # ids of a Maestro length
])
def test_digits_of_an_identifier_are_not_a_card(text: str) -> None:
    assert _found(text, "CREDIT_CARD") == []


@pytest.mark.parametrize(
    "number",
    [_card("0604", 12),  # Faker's Maestro `0604`: no network issues under a leading 0
     _card("4", 12), _card("4", 18),  # Visa has 13, 16 and 19 digits only
     _card("2721", 16), _card("2220", 16),  # just outside Mastercard's 2-series
     _card("9", 16), _card("7", 19), _card("80", 12)],  # no issuer
)
def test_luhn_valid_numbers_outside_known_issuer_ranges_are_not_cards(number: str) -> None:
    assert luhn(number) and not known_card(number)
    assert _found(f"ref {number} end", "CREDIT_CARD") == []


def test_the_wide_card_pattern_needs_luhn_and_mixed_separators_need_the_regrouped_view() -> None:
    number = _card("2223", 16)
    bad = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert is_card_number(number) and not is_card_number(bad)
    assert _found(f"card {bad}", "CREDIT_CARD") == []
    mixed = f"{number[:4]} {number[4:8]}-{number[8:12]} {number[12:]}"
    assert _found(f"card {mixed}", "CREDIT_CARD") == [mixed]  # `normalise.regroup_digits`


def test_iban_with_bad_check_digits_is_not_reported() -> None:
    assert _found("pay to DE00 3704 0044 0532 0130 00", "IBAN_CODE") == []


def test_patterns_tier_reports_no_names() -> None:
    assert scan_text("John Smith lives in Paris", Tier.PATTERNS, ["PERSON", "LOCATION"]) == []


def test_entity_filter_and_empty_filter() -> None:
    text = "jane@example.org 536-22-8726"
    assert {f.entity for f in scan_text(text, Tier.PATTERNS, ["US_SSN"])} == {"US_SSN"}
    assert scan_text(text, Tier.PATTERNS, []) == []


def _reference(text: str, entities: list[str]) -> list[Finding]:
    """Each view of one text through `AnalyzerEngine.analyze`, as before batching and prefilters."""
    analyzer = get_analyzer(Tier.PATTERNS)
    engine = AnalyzerEngine(registry=RecognizerRegistry(analyzer.registry.recognizers,
                                                        supported_languages=["en"]),
                            nlp_engine=analyzer.nlp_engine)
    found = []
    view = normalise(text)
    regrouped = regroup_digits(view)
    for v in [view] if regrouped is view else [view, regrouped]:
        for r in engine.analyze(v.text, language="en", entities=entities, score_threshold=0.4):
            start, end = v.original_span(r.start, r.end)
            found.append(Finding(r.entity_type, start, end, round(float(r.score), 4)))
    return _merge(found)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, (str, int, float)) and not isinstance(node, bool):
        yield str(node)


def _texts() -> list[str]:
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "he_IL", "en_IN", "pt_BR", "en_CA"])
    fake.seed_instance(7)
    texts = [f() for _ in range(40) for f in (
        fake.phone_number, fake.msisdn, fake.ssn, fake.credit_card_number, fake.iban,
        fake.email, fake.ipv4, fake.ipv6, fake.mac_address, fake.uuid4, fake.url, fake.iso8601,
        fake.date, fake.postcode, fake.sha1, fake.ean13, fake.license_plate,
    )]
    texts += [f"call {fake.phone_number()} or {fake.phone_number()} re {fake.sentence()}"
              for _ in range(40)]
    texts += [f"+{fake.msisdn()}" for _ in range(40)]
    for body in pool(12, 1024, seed=3):
        texts.extend(_strings(orjson.loads(body)))
    return list(dict.fromkeys(texts))


def test_batching_and_prefilters_find_what_presidio_finds_text_by_text() -> None:
    entities = sorted(set(covered_entities(Tier.PATTERNS)))
    texts = _texts()
    batched = scan_texts(texts, Tier.PATTERNS, entities)
    # the one intended difference: no phone numbers inside a whole timestamp, UUID, ... (below)
    skip = {t for t in texts if not prefilter.TESTS["PHONE_NUMBER"](t)}
    expected = [[f for f in _reference(t, entities)
                 if not (t in skip and f.entity == "PHONE_NUMBER")] for t in texts]
    differ = [(t, got, want) for t, got, want in zip(texts, batched, expected, strict=True)
              if got != want]
    assert not differ, differ[:5]
    assert sum(map(len, batched)) > len(texts) // 2  # the texts do hold entities


def _real_numbers() -> list[str]:
    """Valid numbers of each region Presidio checks, of each type phonenumbers has an example
    for, in national, international and E.164 form, alone and in a sentence; and Faker's."""
    regions = PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
    rng = random.Random(3)
    texts = []
    for region in regions:
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            for _ in range(6 if example else 0):
                tail = rng.randrange(1000)
                number = phonenumbers.PhoneNumber(
                    country_code=example.country_code,
                    national_number=example.national_number // 1000 * 1000 + tail,
                    italian_leading_zero=example.italian_leading_zero)
                if not phonenumbers.is_valid_number(number):
                    continue
                for form in (PNF.NATIONAL, PNF.INTERNATIONAL, PNF.E164):
                    written = phonenumbers.format_number(number, form)
                    texts += [written, f"Call me on {written} tomorrow", f"tel:{written}"]
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "he_IL", "en_IN", "pt_BR", "en_CA"])
    fake.seed_instance(5)
    texts += [f"ring {fake.phone_number()} or write" for _ in range(300)]
    return list(dict.fromkeys(texts))


def test_the_phone_recognizer_finds_every_number_presidios_finds() -> None:
    """Parity with Presidio's `PhoneRecognizer` on real numbers and on the batching texts: what
    it finds, ours finds, except dotted IPv4 addresses and bare runs of under ten digits without
    a leading 0 (German pager numbers are written so: `16412992`; so are counts and ids); what
    ours adds is North American shapes."""
    ours = PhoneNumberRecognizer()
    presidio = PhoneRecognizer()
    lost, added = [], []
    for text in _real_numbers() + _texts():
        theirs = [(r.start, r.end) for r in presidio.analyze(text, ["PHONE_NUMBER"])]
        mine = [(r.start, r.end) for r in ours.analyze(text, ["PHONE_NUMBER"])]
        lost += [text[a:b] for a, b in theirs if not any(s < b and a < e for s, e in mine)]
        added += [text[a:b] for a, b in mine if not any(s < b and a < e for s, e in theirs)]
    assert all(re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}|[1-9]\d{3,8}", x) for x in lost), lost
    assert added and all(NANP_SHAPE.fullmatch(x) for x in added), added


@pytest.mark.parametrize(
    ("text", "value"),
    [("call (569) 798-2887 today", "(569) 798-2887"),  # area code 569 is not in use
     ("call +1-390-780-8139x610", "+1-390-780-8139x610"),
     ("call 001-595-420-2197.", "001-595-420-2197"),
     ("call 392.647.8591 now", "392.647.8591"),
     ("call 202-555-0173 now", "202-555-0173"),  # valid
     ("call +44 20 7946 0958 now", "+44 20 7946 0958"),
     ("ruf 030 12345678 an", "030 12345678"),
     ("ligue (11) 91234-5678", "(11) 91234-5678")],
)
def test_phone_numbers_valid_or_north_american_in_shape(text: str, value: str) -> None:
    assert _found(text, "PHONE_NUMBER") == [value]


@pytest.mark.parametrize(
    "text",
    ["id 5697982887 x",  # bare digits: valid numbers only (ids look like this)
     "count 16412992",  # bare and under ten digits without a leading 0: a count or an id
     "ssn 021-02-4860",  # a German number for phonenumbers, an SSN in shape
     "ORD-02125913", "see /tickets/04072123", "cus_0301234567",  # digits glued to a word
     "host 56.162.69.162", "card 4926267856084353", "card 501802459229"],
)
def test_what_is_not_a_phone_number(text: str) -> None:
    assert _found(text, "PHONE_NUMBER") == []


def test_the_region_screen_never_skips_a_valid_number() -> None:
    """`could_be_valid` is a necessary condition: every national number phonenumbers parses as
    valid for a region passes it (random digits, prefixes, separators and extensions)."""
    rng = random.Random(0)
    prefixes = ["", "0", "00", "011", "1", "44", "49", "33", "972", "91", "55", "090", "180020"]
    valid = 0
    for _ in range(4000):
        digits = rng.choice(prefixes) + "".join(rng.choices("0123456789", k=rng.randint(3, 14)))
        written = "".join(c + (rng.choice(" -.") if rng.random() < 0.2 else "") for c in digits)
        for region in PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS:
            try:
                number = phonenumbers.parse(written, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                valid += 1
                assert could_be_valid(digits, region), (written, region)
    assert valid > 500


def test_machine_shapes_are_not_scanned_for_phone_numbers_where_presidio_errs() -> None:
    """A whole timestamp, UUID, digest or amount holds no phone number, yet Presidio reports one
    in some: `04.009429` in `...T17:10:04.009429`, the amount `40621830.18`. Those false
    positives are what skipping them loses (the batching test shows nothing else differs)."""
    fake = Faker()
    fake.seed_instance(11)
    phone = PhoneRecognizer()
    shapes = [f() for _ in range(150) for f in (
        lambda: fake.date_time().isoformat() + "Z",
        lambda: fake.date_time().isoformat(sep=" ", timespec="microseconds"),
        lambda: fake.iso8601(tzinfo=fake.pytimezone()),
        fake.iso8601, fake.date, fake.uuid4, fake.sha1, fake.md5,
        lambda: f"{fake.pyfloat(right_digits=2, min_value=-99999, max_value=99999999):.2f}",
    )]
    assert [s for s in shapes if prefilter.TESTS["PHONE_NUMBER"](s)] == []
    errs = [s for s in shapes if phone.analyze(s, ["PHONE_NUMBER"])]
    assert all(re.fullmatch(r"[\d\-T: .+]+", s) for s in errs), errs  # times and amounts only


@pytest.mark.parametrize(
    ("text", "free"),
    [("Philip Smith", True), ("Chicago", True), ("call me later", True), ("O'Brien", True),
     ("open", False), ("on_hold", False), ("2024-02-25T14:19:41Z", False), ("1878.15", False),
     ("9ab47858-0e03-4455-9a66-7fe531300910", False), ("cus_se96ty66yk37", False),
     ("https://example.com/a?b=1", False), ("jane@example.org", False), ("", False)],
)
def test_what_the_ner_model_reads(text: str, free: bool) -> None:
    assert prefilter.is_free_text(text) is free
