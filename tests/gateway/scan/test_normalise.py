"""Evasions a regex alone would miss are undone before scanning, and spans map back."""

from __future__ import annotations

import pytest

from gateway.scan.analyzer import Tier
from gateway.scan.normalise import normalise, regroup_digits
from gateway.scan.scan import scan_text

ZW = "\u200b"
SHY = "\u00ad"


@pytest.mark.parametrize(
    ("entity", "text", "original"),
    [
        # NFKC: fullwidth digits
        ("US_SSN", "ssn \uff15\uff13\uff16-\uff12\uff12-\uff18\uff17\uff12\uff16", None),
        ("CREDIT_CARD", "card \uff14\uff11\uff11\uff11 1111 1111 1111", None),
        # zero-width characters inside an SSN, a card, an e-mail address
        ("US_SSN", f"ssn 5{ZW}36-2{ZW}2-87\u200d26", None),
        ("US_SSN", "ssn 536\u2060-22-\ufeff8726", None),
        ("EMAIL_ADDRESS", f"mail jane{ZW}@{ZW}example.org", None),
        # soft hyphens
        ("CREDIT_CARD", f"card 4111{SHY}1111{SHY}1111{SHY}1111", None),
        ("US_SSN", f"ssn 536{SHY}-22-8726", None),
        # JSON \u escapes, as in a raw JSON body
        ("EMAIL_ADDRESS", r'{"email": "jane\u0040example.org"}', r"jane\u0040example.org"),
        ("US_SSN", r'{"ssn": "\u0035\u0033\u0036-22-8726"}', r"\u0035\u0033\u0036-22-8726"),
        # URL percent-encoding
        ("EMAIL_ADDRESS", "mail to jane%40example.org", "jane%40example.org"),
        ("EMAIL_ADDRESS", "?email=jane%40example.org&x=1", "email=jane%40example.org"),
        ("US_SSN", "/lookup?ssn=536%2D22%2D8726", "536%2D22%2D8726"),
        # digits with spaces, dots or dashes as separators
        ("US_SSN", "ssn 536 22 8726", "536 22 8726"),
        ("US_SSN", "ssn 536.22.8726", "536.22.8726"),
        ("US_SSN", "ssn 5 3 6 2 2 8 7 2 6 end", "5 3 6 2 2 8 7 2 6"),
        ("US_SSN", "ssn 53-622-87-26 end", "53-622-87-26"),
        ("CREDIT_CARD", "card 4111.1111.1111.1111 end", "4111.1111.1111.1111"),
        ("CREDIT_CARD", "card 4111-1111-1111-1111 end", "4111-1111-1111-1111"),
        ("CREDIT_CARD", "card 41 11 11 11 11 11 11 11 end", "41 11 11 11 11 11 11 11"),
    ],
)
def test_evasion_is_caught_and_maps_back(entity: str, text: str, original: str | None) -> None:
    found = [f for f in scan_text(text, Tier.PATTERNS) if f.entity == entity]
    assert found, f"{entity} not found in {text!r}"
    if original is not None:
        assert [text[f.start : f.end] for f in found] == [original]


@pytest.mark.xfail(strict=True, reason="Presidio's e-mail regex takes `/` and `?` into the local "
                   "part and then rejects the match; a query-aware view is still to do (issue 4)")
def test_email_in_a_url_path_with_query() -> None:
    text = "/users?email=jane%40example.org&x=1"
    assert any(f.entity == "EMAIL_ADDRESS" for f in scan_text(text, Tier.PATTERNS))


def test_luhn_still_applies_after_regrouping() -> None:
    assert not [f for f in scan_text("card 4111.1111.1111.1112", "patterns")
                if f.entity == "CREDIT_CARD"]


def test_plain_ascii_is_left_alone() -> None:
    text = "nothing to see: 10.0.0.1, 2024-01-02, v1.2.3"
    view = normalise(text)
    assert view.text == text
    assert list(view.offsets) == list(range(len(text) + 1))


def test_regrouping_spares_ip_addresses_and_short_numbers() -> None:
    text = "from 192.168.10.1 on 2024-01-02 at 10.30 order 12-34"
    assert regroup_digits(normalise(text)).text == text


def test_offsets_map_each_normalised_character_back() -> None:
    text = "a\\u0040b %41 \uff11" + ZW + "2"
    view = normalise(text)
    assert view.text == "a@b A 12"
    assert len(view.offsets) == len(view.text) + 1
    assert view.offsets[-1] == len(text)
    assert text[view.offsets[1] : view.offsets[2]] == "\\u0040"
    assert text[view.offsets[4] : view.offsets[5]] == "%41"


def test_surrogate_pair_escape_and_invalid_percent_bytes() -> None:
    assert normalise(r"x \ud83d\ude00 y").text == "x \U0001f600 y"
    assert normalise("100%ff ok %C3%A9").text == "100%ff ok \u00e9"
