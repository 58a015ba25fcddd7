"""Checks across sections: each problem is pinned to the key that is wrong."""

import pytest

from gateway.policy import PolicyError

from .conftest import policy

GITHUB = """
actions:
  - type: github.write
    match: { method: POST, host: api.github.com }
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            GITHUB + "rules:\n  - {id: w, when: {action: github.write}, decision: deny, tier: 2}\n",
            "test.yaml:9: rules[0].tier: tier only applies to require_approval, not `deny`; "
            "remove it",
        ),
        (
            GITHUB
            + "rules:\n  - {id: w, when: {action: github.write}, decision: allow, route: x}\n",
            "test.yaml:9: rules[0].route: route only applies to require_approval, not `allow`; "
            "remove it",
        ),
        (
            GITHUB + "rules:\n  - {id: w, when: {action: github.write}, "
            "decision: allow_with_constraints}\n",
            "test.yaml:9: rules[0].decision: allow_with_constraints needs `constraints`; add "
            "`constraints: {timeout_seconds: 30}` or use allow",
        ),
        (
            GITHUB
            + "rules:\n  - {id: w, when: {action: github.write}, decision: require_approval}\n"
            "approvals: {tiers: {2: {approvals: 1}}}\n",
            "test.yaml:9: rules[0]: unknown tier `1` (the default); add it under approvals.tiers "
            "or use one of 2",
        ),
        (
            GITHUB + "rules:\n  - {id: w, when: {action: github.write}, decision: require_approval,"
            " tier: 3, route: ops}\n"
            "approvals: {tiers: {3: {approvals: 2}}, groups: {ops: [dave, dave]}}\n",
            "test.yaml:9: rules[0].route: group `ops` has 1 reviewer(s) but tier 3 needs 2 "
            "distinct approvals; add reviewers or lower the tier",
        ),
        (
            GITHUB + "rules:\n  - {id: w, when: {action: github.wirte}, decision: deny}\n",
            "test.yaml:9: rules[0].when.action: no entry under actions produces `github.wirte`; "
            "check the spelling or add one",
        ),
        (
            "default: allow_with_constraints\n",
            "test.yaml:4: default: the default cannot be allow_with_constraints (it has no "
            "constraints); use deny",
        ),
        (
            "approvals: {tiers: {1: {approvals: 1, on_timeout: escalate}}}\n",
            "test.yaml:4: approvals.escalation: on_timeout `escalate` needs an escalation chain; "
            "add `escalation: [group, ...]`",
        ),
        (
            GITHUB + "rules:\n  - {id: w, when: {action: github.write}, decision: deny, "
            "notify: true}\n",
            "test.yaml:9: rules[0].notify: notify only applies to allow and "
            "allow_with_constraints, not `deny`; remove it (reviewers already hear of held "
            "calls) or allow the call",
        ),
        (
            "approvals: {queue: {target_median_wait: 1h, target_p95_wait: 30m}}\n",
            "test.yaml:4: approvals.queue.target_p95_wait: target_p95_wait is shorter than "
            "target_median_wait, which no queue can meet; raise it to at least the median target",
        ),
        (
            GITHUB + "rules:\n  - {id: w, when: {action: github.write}, decision: require_approval,"
            " route: ops}\n"
            "approvals: {groups: {ops: [dave]}, queue: {second_review_rate: 0.1}}\n",
            "test.yaml:9: rules[0].route: group `ops` has 1 reviewer(s), but a sampled second "
            "review of tier 1 needs 2 distinct approvals; add a reviewer or set "
            "approvals.queue.second_review_rate to 0",
        ),
        (
            "approvals: {escalation: [ops], groups: {eng: [frank]}}\n",
            "test.yaml:4: approvals.escalation[0]: unknown group `ops`; add it under "
            "approvals.groups or use one of eng",
        ),
        (
            "responses: {detect: [PERSON], redact: [EMAIL_ADDRESS]}\n",
            "test.yaml:4: responses.redact[0]: `EMAIL_ADDRESS` is not in responses.detect, so it "
            "is never found; add it there",
        ),
        (
            "responses: {detect: [US_SNN]}\n",
            "test.yaml:4: responses.detect[0]: unknown entity type `US_SNN`; use one of "
            "CREDIT_CARD, CRYPTO, DATE_TIME, EMAIL_ADDRESS, IBAN_CODE, IP_ADDRESS, MAC_ADDRESS, "
            "MEDICAL_LICENSE, PHONE_NUMBER, UK_NHS, URL, US_BANK_NUMBER, US_DRIVER_LICENSE, "
            "US_ITIN, US_PASSPORT, US_SSN, UUID, or define it under responses.recognizers",
        ),
        (
            "responses: {tier: patterns, detect: [PERSON]}\n",
            "test.yaml:4: responses.detect[0]: `PERSON` is found only by the NER model; set "
            "`responses.tier: ner`",
        ),
        (
            "responses:\n  recognizers: [{name: US_SSN, regex: 'x'}]\n",
            "test.yaml:5: responses.recognizers[0].name: `US_SSN` is a built-in entity type; "
            "rename it",
        ),
        (
            "responses:\n  detect: [US_SSN]\n  overrides: [{actions: crm.*, quarantine: [ACME]}]\n",
            "test.yaml:6: responses.overrides[0].quarantine[0]: unknown entity type `ACME`; use "
            "one of CREDIT_CARD, CRYPTO, DATE_TIME, EMAIL_ADDRESS, IBAN_CODE, IP_ADDRESS, "
            "MAC_ADDRESS, MEDICAL_LICENSE, PHONE_NUMBER, UK_NHS, URL, US_BANK_NUMBER, "
            "US_DRIVER_LICENSE, US_ITIN, US_PASSPORT, US_SSN, UUID, or define it under "
            "responses.recognizers",
        ),
        (
            "responses:\n  detect: [US_SSN]\n"
            "  overrides: [{actions: crm.*, redact: [IBAN_CODE]}]\n",
            "test.yaml:6: responses.overrides[0].redact[0]: `IBAN_CODE` is not in "
            "responses.detect, so it is never found; add it there",
        ),
        (
            "actions:\n  - {type: 'x.{tool}', match: {host: h.example}}\n",
            "test.yaml:5: actions[0].type: `{tool}` is only known for MCP tool calls; add "
            "`mcp: tools/call` to match or remove the placeholder",
        ),
        (
            "actions:\n  - {type: x, match: {host: h.example}, params: {p: 'mcp:arguments.p'}}\n",
            "test.yaml:5: actions[0].params.p: `mcp:arguments.p` reads an MCP request, but this "
            "entry has no `match.mcp`; add `mcp: tools/call` to match",
        ),
        (
            "actions:\n  - {type: x, match: {path: '/items/{id}'}, params: {p: 'path:ident'}}\n",
            "test.yaml:5: actions[0].params.p: `path:ident` names no `{ident}` segment of "
            "match.path; add it to the path, like `/items/{id}`",
        ),
        (
            "actions:\n  - {type: 'x.{repo}', match: {host: h.example}}\n",
            "test.yaml:5: actions[0].type: action type `x.{repo}` is not valid; write it like "
            "`payments.refund`",
        ),
    ],
)
def test_cross_section_problems(body: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy(body)
    assert str(err.value) == message


def test_cross_section_problems_are_all_reported() -> None:
    with pytest.raises(PolicyError) as err:
        policy(
            GITHUB + "rules:\n"
            "  - {id: a, when: {action: github.write}, decision: allow, tier: 1}\n"
            "  - {id: a, when: {action: github.write}, decision: require_approval, route: x}\n"
        )
    assert len(err.value.problems) == 3


def test_rules_may_name_unclassified_and_templated_mcp_types() -> None:
    loaded = policy(
        "actions:\n"
        "  - {type: 'mcp.{tool}', match: {mcp: tools/call}, params: {p: 'mcp:arguments.p'}}\n"
        "rules:\n"
        "  - {id: u, when: {action: unclassified}, decision: deny}\n"
        "  - {id: d, when: {action: mcp.delete_file, params: {p: {glob: '/etc/*'}}}, "
        "decision: deny}\n"
    )
    assert [r.id for r in loaded.model.rules] == ["u", "d"]


def test_a_playbook_rule_may_notify_and_a_lone_reviewer_is_fine_without_second_reviews() -> None:
    loaded = policy(
        GITHUB + "rules:\n"
        "  - {id: p, when: {action: github.write}, decision: allow, notify: true}\n"
        "  - {id: r, when: {action: github.write}, decision: require_approval, route: ops}\n"
        "approvals: {groups: {ops: [dave]}}\n"
    )
    assert [r.notify for r in loaded.model.rules] == [True, False]


def test_request_contains_must_name_entity_types_a_scan_can_report() -> None:
    with pytest.raises(PolicyError) as err:
        policy(
            GITHUB + "rules:\n"
            "  - id: no-ssn\n"
            "    when: {action: github.write, request_contains: [US_SSN, US_SNN]}\n"
            "    decision: deny\n"
        )
    assert str(err.value) == (
        "test.yaml:10: rules[0].when.request_contains[1]: unknown entity type `US_SNN`; use one "
        "of AGE, CREDIT_CARD, CRYPTO, DATE_TIME, EMAIL, EMAIL_ADDRESS, IBAN_CODE, ID, "
        "IP_ADDRESS, LOCATION, MAC_ADDRESS, MEDICAL_LICENSE, NRP, ORGANIZATION, PERSON, "
        "PHONE_NUMBER, UK_NHS, URL, US_BANK_NUMBER, US_DRIVER_LICENSE, US_ITIN, US_PASSPORT, "
        "US_SSN, UUID, or define it under responses.recognizers"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[]", "test.yaml:10: rules[0].when.request_contains: must not be empty"),
        ("us_ssn", "test.yaml:10: rules[0].when.request_contains: entity `us_ssn` is not "
                   "valid; write it like `EMAIL_ADDRESS`"),
    ],
)
def test_request_contains_is_a_non_empty_list_of_entity_names(value: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy(GITHUB + "rules:\n  - id: r\n    when: {request_contains: " + value + "}\n"
               "    decision: deny\n")
    assert str(err.value) == message


def test_request_contains_takes_model_and_custom_entity_types_one_or_many() -> None:
    loaded = policy(
        GITHUB + "responses:\n  recognizers: [{name: ACME_ACCOUNT_ID, regex: 'ACME-[0-9]{8}'}]\n"
        "rules:\n"
        "  - {id: a, when: {request_contains: PERSON}, decision: require_approval}\n"
        "  - {id: b, when: {request_contains: [ACME_ACCOUNT_ID, IBAN_CODE]}, decision: deny}\n"
    )
    assert [r.when.request_contains for r in loaded.model.rules] == [
        ["PERSON"], ["ACME_ACCOUNT_ID", "IBAN_CODE"]
    ]


@pytest.mark.parametrize(
    ("triggers", "message"),
    [
        ("  - {id: loop, count: repeats, at_least: 10}\n  - {id: loop, count: calls}\n",
         "test.yaml:11: triggers[1].id: duplicate trigger id `loop` (also triggers[0]); give "
         "each its own"),
        ("  - {id: leak, count: dlp}\n",
         "test.yaml:10: triggers[0].count: `dlp` counts requests carrying an entity that a rule's "
         "`request_contains` looks for, and no rule has `request_contains`, so it could never "
         "fire; add such a rule or drop `dlp`"),
        ("  - {id: loop, count: loops}\n",
         "test.yaml:10: triggers[0].count: unknown count `loops`; use one of denials, "
         "quarantines, repeats, calls, dlp"),
        ("  - {id: loop, count: calls, at_least: 0}\n",
         "test.yaml:10: triggers[0].at_least: must be at least 1, got `0`"),
    ],
)
def test_triggers_are_checked_where_they_are_written(triggers: str, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy(GITHUB + "rules: []\ntriggers:\n" + triggers)
    assert str(err.value) == message


def test_triggers_and_severity_responses_load_with_their_defaults() -> None:
    loaded = policy(GITHUB + "rules:\n"
                    "  - {id: pii, when: {request_contains: US_SSN}, decision: deny}\n"
                    "triggers:\n"
                    "  - {id: burst, count: [denials, quarantines], at_least: 5, within: 2m}\n"
                    "  - {id: leak, count: dlp, halt: action, severity: SEV-2}\n"
                    "incidents: {severities: {SEV-3: {halt: action}}}\n")
    burst, leak = loaded.model.triggers
    assert (burst.count, burst.at_least, burst.within.total_seconds(), burst.halt,
            burst.severity) == (["denials", "quarantines"], 5, 120.0, "agent", "SEV-3")
    assert (leak.count, leak.at_least, leak.halt) == (["dlp"], 1, "action")
    responses = loaded.model.incidents
    assert [responses.response(s).halt for s in ("SEV-1", "SEV-2", "SEV-3", "SEV-4")] == [
        "agent", "agent", "action", "none"]


def test_evidence_keep_has_per_action_overrides_first_match_wins() -> None:
    loaded = policy(GITHUB + "rules: []\nevidence:\n  keep: never\n  overrides:\n"
                    "    - {actions: [github.*], keep: always}\n"
                    "    - {actions: '*', keep: on_hold}\n")
    evidence = loaded.model.evidence
    assert [evidence.keep_for(a) for a in ("github.write", "email.send")] == [
        "always", "on_hold"]
    assert policy(GITHUB + "rules: []\n").model.evidence.keep_for("x") == "on_hold"
    with pytest.raises(PolicyError) as err:
        policy(GITHUB + "rules: []\nevidence: {keep: sometimes}\n")
    assert "evidence.keep" in str(err.value)
