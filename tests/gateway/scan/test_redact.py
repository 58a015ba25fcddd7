"""Verdicts and in-place redaction of JSON and text bodies, with the real Presidio analyzers."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from gateway.policy.schema import Responses
from gateway.scan.analyzer import Tier
from gateway.scan.redact import Limits, Outcome, json_steps, judge_all, scan_json, scan_plain_text
from gateway.scan.settings import RecognizerSpec, ScanSettings

SSN = "536-22-8726"
CARD = "4111111111111111"
IBAN = "DE89 3704 0044 0532 0130 00"
RULES = Responses(
    detect=["PHONE_NUMBER"],
    redact=["US_SSN", "CREDIT_CARD", "EMAIL_ADDRESS"],
    quarantine=["IBAN_CODE"],
)


def _shape(node: Any) -> Any:
    """Structure only: object member counts and array lengths, leaves as one marker."""
    if isinstance(node, dict):
        return ("obj", len(node), tuple(_shape(v) for v in node.values()))
    if isinstance(node, list):
        return ("arr", tuple(_shape(v) for v in node))
    return "leaf"


def _json(doc: Any, rules: Responses = RULES, **kw: Any):
    return scan_json(orjson.dumps(doc), Tier.PATTERNS, rules, **kw)


def _fields(result) -> set[tuple[str, str, str]]:
    return {(r["field"], r["reason"], r["action"]) for r in result.records}


def test_nested_json_is_redacted_in_place_and_keeps_its_shape() -> None:
    doc = {
        "customer": {"name": "x", "ssn": SSN, "tags": ["vip", f"card {CARD}"]},
        "items": [{"id": 1}, {"id": 2}, {"email": "jane@example.org", "qty": 3}],
        "ok": True,
        "none": None,
    }
    result = _json(doc)
    assert result.outcome is Outcome.REDACTED
    out = json.loads(result.body)
    assert _shape(out) == _shape(doc)
    assert out["customer"]["ssn"] == "<US_SSN>"
    assert out["customer"]["tags"] == ["vip", "card <CREDIT_CARD>"]
    assert out["items"][2] == {"email": "<EMAIL_ADDRESS>", "qty": 3}
    assert out["ok"] is True and out["none"] is None
    assert _fields(result) == {
        ("response.customer.ssn", "US_SSN", "redacted"),
        ("response.customer.tags[1]", "CREDIT_CARD", "redacted"),
        ("response.items[2].email", "EMAIL_ADDRESS", "redacted"),
    }
    assert all(0 < r["score"] <= 1 for r in result.records)


def test_output_is_compact() -> None:
    assert _json({"a": [1, 2], "b": "c"}).body == b'{"a":[1,2],"b":"c"}'


def test_clean_body_passes_unchanged() -> None:
    result = _json({"a": "hello", "n": [1, 2.5]})
    assert result.outcome is Outcome.PASS
    assert result.records == []
    assert json.loads(result.body) == {"a": "hello", "n": [1, 2.5]}


def test_keys_with_pii_are_renamed_and_collisions_keep_every_member() -> None:
    doc = {"<EMAIL_ADDRESS>": 0, "jane@example.org": 1, "bob@example.com": 2, "plain": 3}
    result = _json(doc)
    out = json.loads(result.body)
    assert list(out) == ["<EMAIL_ADDRESS>", "<EMAIL_ADDRESS>#2", "<EMAIL_ADDRESS>#3", "plain"]
    assert list(out.values()) == [0, 1, 2, 3]
    assert ('response["<EMAIL_ADDRESS>#2"]', "EMAIL_ADDRESS", "redacted") in _fields(result)
    assert all("example" not in r["field"] for r in result.records)
    assert {r["part"] for r in result.records} == {"key"}


def test_a_quarantine_entity_anywhere_quarantines_the_body() -> None:
    doc = {"a": {"b": [{"c": SSN}, {"d": [f"pay to {IBAN}"]}]}}
    result = _json(doc)
    assert result.outcome is Outcome.QUARANTINE
    assert ("response.a.b[1].d[0]", "IBAN_CODE", "quarantined") in _fields(result)
    out = json.loads(result.body)  # the redacted view shown by the quarantine API
    assert out["a"]["b"][1]["d"][0] == "pay to <IBAN_CODE>"
    assert out["a"]["b"][0]["c"] == "<US_SSN>"


def test_detected_only_entities_are_reported_and_passed() -> None:
    result = _json({"phone": "call +1 415-555-2671 after six"})
    assert result.outcome is Outcome.PASS
    assert _fields(result) == {("response.phone", "PHONE_NUMBER", "reported")}
    assert json.loads(result.body)["phone"] == "call +1 415-555-2671 after six"


def test_evasions_inside_json_strings_are_redacted_at_the_right_place() -> None:
    fullwidth = "ssn ５３６-２２-８７２６ end"
    zero_width = "card 4111\u200b1111\u200b1111\u200b1111 end"
    result = _json({"a": fullwidth, "b": [zero_width]})
    out = json.loads(result.body)
    assert out == {"a": "ssn <US_SSN> end", "b": ["card <CREDIT_CARD> end"]}
    assert _fields(result) == {
        ("response.a", "US_SSN", "redacted"),
        ("response.b[0]", "CREDIT_CARD", "redacted"),
    }


def test_escaped_json_in_a_string_is_seen_through() -> None:
    # The raw body spells the digits as \\u escapes inside the string value.
    body = b'{"x": "ssn \\\\u0035\\\\u0033\\\\u0036-22-8726"}'
    result = scan_json(body, Tier.PATTERNS, RULES)
    assert json.loads(result.body) == {"x": "ssn <US_SSN>"}


def test_a_number_that_is_a_card_number_is_redacted() -> None:
    result = scan_json(b'{"card": 4111111111111111, "f": 4111111111111111.0, "n": 42}',
                       Tier.PATTERNS, RULES)
    out = json.loads(result.body)
    assert out == {"card": "<CREDIT_CARD>", "f": "<CREDIT_CARD>", "n": 42}
    assert result.outcome is Outcome.REDACTED
    assert ("response.card", "CREDIT_CARD", "redacted") in _fields(result)


def test_over_the_limits_is_unscannable_never_pass() -> None:
    many = {"items": [f"value {i}" for i in range(50)]}
    assert _json(many, limits=Limits(max_strings=10)).outcome is Outcome.UNSCANNABLE
    long = {"text": "a" * 500}
    over = _json(long, limits=Limits(max_chars=100))
    assert over.outcome is Outcome.UNSCANNABLE and over.body is None and over.note
    deep: Any = "x"
    for _ in range(20):
        deep = [deep]
    assert _json(deep, limits=Limits(max_depth=10)).outcome is Outcome.UNSCANNABLE
    assert _json({"a": 1}, limits=Limits(max_bytes=3)).outcome is Outcome.UNSCANNABLE
    text = scan_plain_text("b" * 500, Tier.PATTERNS, RULES, Limits(max_chars=100))
    assert text.outcome is Outcome.UNSCANNABLE


def test_ambiguous_or_unwritable_json_is_unscannable() -> None:
    for body in (
        b'{"a": "x", "a": "536-22-8726"}',  # duplicate keys
        b'{"a": 1e400}',  # not finite
        b'{"a": 123456789012345678901234567890}',  # beyond 64 bits
        b'{"a": "\xff"}',  # not UTF-8
    ):
        result = scan_json(body, Tier.PATTERNS, RULES)
        assert result.outcome is Outcome.UNSCANNABLE, body
        assert result.body is None


def test_not_json_is_scanned_as_text() -> None:
    result = scan_json(f"<html>ssn {SSN}</html>".encode(), Tier.PATTERNS, RULES)
    assert result.outcome is Outcome.REDACTED
    assert result.body == "<html>ssn <US_SSN></html>"
    assert result.note == "not valid JSON: scanned as text"


def test_text_bodies() -> None:
    result = scan_plain_text(f"Dear user, ssn {SSN}, mail jane@example.org.", Tier.PATTERNS, RULES)
    assert result.outcome is Outcome.REDACTED
    assert result.body == "Dear user, ssn <US_SSN>, mail <EMAIL_ADDRESS>."
    assert _fields(result) == {
        ("response", "US_SSN", "redacted"),
        ("response", "EMAIL_ADDRESS", "redacted"),
    }
    held = scan_plain_text(f"wire to {IBAN}", Tier.PATTERNS, RULES)
    assert held.outcome is Outcome.QUARANTINE and held.body == "wire to <IBAN_CODE>"
    clean = scan_plain_text("nothing here", Tier.PATTERNS, RULES)
    assert clean.outcome is Outcome.PASS and clean.body == "nothing here"


def test_empty_policy_scans_for_nothing() -> None:
    result = _json({"ssn": SSN}, rules=Responses())
    assert result.outcome is Outcome.PASS and json.loads(result.body) == {"ssn": SSN}


def test_ner_tier_redacts_a_person() -> None:
    rules = Responses(redact=["PERSON"])
    body = orjson.dumps({"ticket": {"note": "Customer John Smith called about the refund."}})
    result = scan_json(body, Tier.NER, rules)
    assert result.outcome is Outcome.REDACTED
    assert json.loads(result.body)["ticket"]["note"] == "Customer <PERSON> called about the refund."
    assert _fields(result) == {("response.ticket.note", "PERSON", "redacted")}


ACME = RecognizerSpec("ACME_ACCOUNT_ID", r"\bACME-\d{8}\b", 0.8)
# A bare six-digit number is too weak alone (0.3); next to `ticket` it is a ticket number.
TICKET = RecognizerSpec("ACME_TICKET", r"\b\d{6}\b", 0.3, ("ticket",))


def _settings(tier: str = "patterns", **lists: tuple[str, ...]) -> ScanSettings:
    return ScanSettings(tier=tier, detect=lists.pop("detect", ()),
                        recognizers=(ACME, TICKET), **lists)


@pytest.mark.parametrize("tier", ["patterns", "ner"])
def test_a_policy_recognizer_finds_and_redacts_an_internal_id(tier: str) -> None:
    body = orjson.dumps({"account": {"id": "ACME-12345678", "note": "moved from ACME-87654321"}})
    result = scan_json(body, tier, _settings(tier, redact=("ACME_ACCOUNT_ID",)))
    assert result.outcome is Outcome.REDACTED
    assert json.loads(result.body) == {
        "account": {"id": "<ACME_ACCOUNT_ID>", "note": "moved from <ACME_ACCOUNT_ID>"}
    }
    assert _fields(result) == {
        ("response.account.id", "ACME_ACCOUNT_ID", "redacted"),
        ("response.account.note", "ACME_ACCOUNT_ID", "redacted"),
    }


def test_a_policy_entity_can_quarantine_and_is_reported_like_a_built_in() -> None:
    body = orjson.dumps({"id": "ACME-12345678", "ssn": SSN})
    result = scan_json(body, "patterns", _settings(quarantine=("ACME_ACCOUNT_ID",),
                                                   redact=("US_SSN",)))
    assert result.outcome is Outcome.QUARANTINE
    assert json.loads(result.body) == {"id": "<ACME_ACCOUNT_ID>", "ssn": "<US_SSN>"}
    text = scan_plain_text("account ACME-12345678", "patterns",
                           _settings(detect=("ACME_ACCOUNT_ID",)))
    assert text.outcome is Outcome.PASS and text.body == "account ACME-12345678"
    assert _fields(text) == {("response", "ACME_ACCOUNT_ID", "reported")}


@pytest.mark.parametrize("tier", ["patterns", "ner"])
def test_context_words_in_the_text_raise_a_weak_policy_pattern_over_the_threshold(
    tier: str,
) -> None:
    """Presidio adds 0.35 (and lifts to at least 0.4) when a context word is among the five
    words before a match; in the patterns tier too, whose engine splits words without a model."""
    settings = _settings(tier, redact=("ACME_TICKET",))
    near = scan_plain_text("re your ticket 123456, sent today", tier, settings)
    assert near.body == "re your ticket <ACME_TICKET>, sent today"
    assert near.verdict.records[0].score == pytest.approx(0.65)
    plural = scan_plain_text("Tickets: 123456", tier, settings)  # substring match: `tickets`
    assert plural.body == "Tickets: <ACME_TICKET>"
    for far in ("order 123456 shipped", "123456 ticket"):  # no context word before the match
        assert scan_plain_text(far, tier, settings).outcome is Outcome.PASS


def test_the_policy_model_recognizers_fit_as_settings_too() -> None:
    rules = Responses(redact=["ACME_ACCOUNT_ID"], recognizers=[
        {"name": "ACME_ACCOUNT_ID", "regex": r"\bACME-\d{8}\b", "score": 0.8}])
    result = scan_json(orjson.dumps({"id": "ACME-12345678"}), "patterns", rules)
    assert json.loads(result.body) == {"id": "<ACME_ACCOUNT_ID>"}


def test_bodies_judged_together_get_what_each_gets_alone() -> None:
    bodies = [orjson.dumps({"n": i, "iban": IBAN if i == 1 else "-", "mail": f"u{i}@example.org"})
              for i in range(3)] + [b"plain text, no json"]
    steps = [json_steps(body, Tier.PATTERNS, RULES) for body in bodies]
    together = [(r.outcome, r.body, r.records) for r in judge_all(steps)]
    alone = [scan_json(body, Tier.PATTERNS, RULES) for body in bodies]
    assert together == [(r.outcome, r.body, r.records) for r in alone]
    assert [r.outcome for r in alone] == [Outcome.REDACTED, Outcome.QUARANTINE,
                                          Outcome.REDACTED, Outcome.PASS]


def test_an_analyzer_fault_in_a_batch_fails_only_the_body_at_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.scan import redact

    real = redact.scan_texts

    def fails_on_poison(texts: list[str], *args: Any, **kw: Any) -> Any:
        if "poison" in texts:
            raise RuntimeError("model crashed")
        return real(texts, *args, **kw)

    monkeypatch.setattr(redact, "scan_texts", fails_on_poison)
    bodies = [orjson.dumps({"mail": "jane@example.org"}), orjson.dumps({"x": "poison"}),
              orjson.dumps({"ok": "fine"})]
    results = judge_all([json_steps(body, Tier.PATTERNS, RULES) for body in bodies])
    assert [r.outcome for r in results] == [Outcome.REDACTED, Outcome.UNSCANNABLE, Outcome.PASS]
    assert results[1].note == "analyzer failed: RuntimeError"
