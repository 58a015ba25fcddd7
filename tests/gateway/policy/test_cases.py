"""Expectation cases: acme.cases.yaml passes, and a wrong expectation is reported as a failure."""

from pathlib import Path

import pytest

from gateway.policy import (
    PolicyError,
    Verdict,
    load_cases,
    load_cases_text,
    load_policy_text,
    run_cases,
)

from .conftest import ACME, NOW

ACME_CASES = ACME.with_name("acme.cases.yaml")


def test_the_reference_cases_pass(acme) -> None:
    report = run_cases(acme, load_cases(ACME_CASES), NOW)
    assert report.failed == [], report.format()
    assert report.ok
    assert len(report.passed) >= 20


def test_the_reference_cases_cover_every_rule(acme) -> None:
    report = run_cases(acme, load_cases(ACME_CASES), NOW)
    won = {rule for r in report.results for rule in r.decision.rule_ids}
    assert {rule.id for rule in acme.model.rules} | {"egress"} <= won


WRONG = """
cases:
  - name: reads are allowed
    request: { url: https://api.github.com/repos/a/b }
    expect: { decision: allow, rules: [reads] }
  - name: a big refund is allowed (wrong)
    request: { method: POST, url: https://api.stripe.com/v1/refunds, form: { amount: 25000 } }
    expect:
      decision: allow
      rules: [small-refunds]
      tier: 2
      constraints: { timeout_seconds: 30 }
"""


def test_a_wrong_expectation_fails_and_says_expected_versus_got(acme) -> None:
    report = run_cases(acme, load_cases_text(WRONG, "wrong.yaml"), NOW)
    assert not report.ok
    assert [r.case.name for r in report.passed] == ["reads are allowed"]
    [failure] = report.failed
    assert failure.mismatches == (
        "decision: expected `allow`, got `require_approval`",
        "rules: expected [`small-refunds`], got [`refunds-need-finance`]",
        "constraints: expected {timeout_seconds: `30.0`}, got {}",
    )
    assert report.format() == (
        "PASS  reads are allowed\n"
        "FAIL  a big refund is allowed (wrong)  (wrong.yaml:6)\n"
        "        decision: expected `allow`, got `require_approval`\n"
        "        rules: expected [`small-refunds`], got [`refunds-need-finance`]\n"
        "        constraints: expected {timeout_seconds: `30.0`}, got {}\n"
        "1 passed, 1 failed"
    )


def test_requests_can_carry_headers_query_agent_raw_bodies_and_mcp() -> None:
    [case] = load_cases_text(
        """
cases:
  - name: everything
    request:
      method: post
      url: "https://Tools.Acme.Internal:8443/mcp?x=1&x=2"
      agent: ops-bot
      headers: { X-Trace: abc }
      mcp: { tool: delete_file, arguments: { path: /a } }
    expect: { decision: deny }
"""
    )
    call = case.call
    assert (call.method, call.host, call.port, call.path) == (
        "POST",
        "tools.acme.internal",
        8443,
        "/mcp",
    )
    assert call.query == (("x", "1"), ("x", "2"))
    assert call.agent == "ops-bot"
    assert call.header("x-trace") == "abc"
    assert call.content_type == "application/json"
    assert b'"name": "delete_file"' in call.body


def test_a_case_clock_applies(acme) -> None:
    [case] = load_cases_text(
        "now: 2031-05-01T00:00:00Z\ncases:\n  - name: c\n    request: {url: 'https://x.example/'}\n"
        "    expect: {decision: deny}\n"
    )
    assert case.now is not None and case.now.year == 2031
    assert run_cases(acme, [case]).results[0].decision.verdict is Verdict.DENY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: []\n", "c.yaml:1: cases: must not be empty"),
        (
            "cases:\n  - name: a\n    request: {url: 'ftp://x/'}\n    expect: {decision: deny}\n",
            "c.yaml:3: cases[0].request.url: `ftp://x/` is not an http(s) URL; write it like "
            "`https://host/path`",
        ),
        (
            "cases:\n  - name: a\n    request: {url: 'https://x/', json: {}, body: x}\n"
            "    expect: {decision: deny}\n",
            "c.yaml:3: cases[0].request: give at most one of json, form, body and mcp",
        ),
        (
            "cases:\n  - name: a\n    request: {url: 'https://x/'}\n    expect: {decision: nope}\n",
            "c.yaml:4: cases[0].expect.decision: unknown decision `nope`; use one of allow, "
            "allow_with_constraints, require_approval, deny",
        ),
        (
            "cases:\n  - name: a\n    request: {url: 'https://x/'}\n    expect: {decision: deny}\n"
            "  - name: a\n    request: {url: 'https://x/'}\n    expect: {decision: deny}\n",
            "c.yaml:5: cases[1].name: duplicate case `a`",
        ),
        ("", "c.yaml:1: the file is empty; add `cases:` with at least one case"),
    ],
)
def test_bad_cases_files(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_cases_text(text, "c.yaml")
    assert str(err.value) == message


def test_a_missing_cases_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        load_cases(tmp_path / "none.yaml")


DLP_POLICY = """
version: 1
policy: dlp
revision: "1"
egress: { allow: [crm.example] }
actions:
  - type: crm.write
    match: { method: POST, host: crm.example }
rules:
  - { id: crm-writes, when: { action: crm.write }, decision: allow }
  - id: crm-no-ssn
    when: { action: crm.write, request_contains: [US_SSN, CREDIT_CARD] }
    decision: deny
"""
DLP_CASES = """
cases:
  - name: a clean note is allowed
    request: { method: POST, url: https://crm.example/notes, json: { note: hello } }
    expect: { decision: allow, rules: [crm-writes] }
  - name: a note carrying an SSN is denied
    request: { method: POST, url: https://crm.example/notes, json: { note: 078-05-1120 } }
    request_contains: [US_SSN]
    expect: { decision: deny, rules: [crm-no-ssn] }
  - name: another entity type is not refused
    request: { method: POST, url: https://crm.example/notes }
    request_contains: IBAN_CODE
    expect: { decision: allow }
  - name: a body the gateway could not scan is refused
    request: { method: POST, url: https://crm.example/notes, body: "%PDF-1.7" }
    request_contains: unscanned
    expect: { decision: deny, rules: [crm-no-ssn], matched: [crm-writes, crm-no-ssn] }
"""


def test_cases_state_what_the_scan_found_in_the_request() -> None:
    cases = load_cases_text(DLP_CASES, "dlp.cases.yaml")
    assert [c.call.request_entities for c in cases] == [
        frozenset(), frozenset({"US_SSN"}), frozenset({"IBAN_CODE"}), None
    ]
    report = run_cases(load_policy_text(DLP_POLICY, "dlp.yaml"), cases, NOW)
    assert report.ok, report.format()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("~", "c.yaml:4: cases[0].request_contains: write `[]` for a request the scan found "
              "clean, or `unscanned`"),
        ("[us_ssn]", "c.yaml:4: cases[0].request_contains[0]: entity `us_ssn` is not valid; "
                     "write it like `EMAIL_ADDRESS`"),
    ],
)
def test_bad_request_contains(value: str, message: str) -> None:
    text = (
        "cases:\n  - name: a\n    request: {url: 'https://x/'}\n"
        f"    request_contains: {value}\n    expect: {{decision: deny}}\n"
    )
    with pytest.raises(PolicyError) as err:
        load_cases_text(text, "c.yaml")
    assert str(err.value) == message
