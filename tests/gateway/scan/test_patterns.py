"""The patterns tier: Presidio's regex and checksum recognizers, no model."""

from __future__ import annotations

import pytest

from gateway.scan.analyzer import Tier
from gateway.scan.scan import scan_text


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


def test_iban_with_bad_check_digits_is_not_reported() -> None:
    assert _found("pay to DE00 3704 0044 0532 0130 00", "IBAN_CODE") == []


def test_patterns_tier_reports_no_names() -> None:
    assert scan_text("John Smith lives in Paris", Tier.PATTERNS, ["PERSON", "LOCATION"]) == []


def test_entity_filter_and_empty_filter() -> None:
    text = "jane@example.org 536-22-8726"
    assert {f.entity for f in scan_text(text, Tier.PATTERNS, ["US_SSN"])} == {"US_SSN"}
    assert scan_text(text, Tier.PATTERNS, []) == []
