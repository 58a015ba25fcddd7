"""Deciding: every matching rule applies, the strictest wins, shadow rules only record."""

import dataclasses
from datetime import timedelta

import pytest

from gateway.call import Action
from gateway.policy import Constraints, Verdict, decide
from gateway.policy.decide import dlp_entities

from .conftest import NOW, call, policy

RULES = """
actions:
  - type: deploy.restart
    match: { host: deploy.example }
    tags: [prod, write]
    params: { service: "json:$.service" }
agents:
  ops-bot: { tenant: acme }
  other-bot: { tenant: globex }
approvals:
  tiers: { 1: {}, 2: {}, 3: { approvals: 2 } }
  groups: { ops: [dave, erin], leads: [frank] }
rules:
  - id: restarts-allowed
    when: { action: deploy.restart }
    decision: allow
  - id: restarts-short
    when: { action: deploy.restart }
    decision: allow_with_constraints
    constraints: { timeout_seconds: 30, max_request_body_bytes: 4096 }
  - id: restarts-shorter
    when: { action: "deploy.*" }
    decision: allow_with_constraints
    constraints: { timeout_seconds: 10 }
  - id: db-needs-ops
    when: { action: deploy.restart, params: { service: db } }
    decision: require_approval
    tier: 1
    route: leads
  - id: db-needs-two
    when: { action: deploy.restart, params: { service: db } }
    decision: require_approval
    tier: 3
    route: ops
    reason: Database restarts need two people
    rollback: Restart the previous release
  - id: payroll-never
    when: { action: deploy.restart, params: { service: payroll } }
    decision: deny
  - id: globex-never
    when: { tenant: globex }
    decision: deny
    reason: Globex agents are not allowed to deploy
  - id: night-shadow
    when: { action: deploy.restart, agent: "night-*" }
    decision: deny
    mode: shadow
  - id: temporary
    when: { action: deploy.restart, agent: temp-bot }
    decision: deny
    expires: 2030-01-01T13:00:00Z
  - id: gets-need-approval
    when: { action: deploy.restart, method: GET, host: deploy.example, tags: [prod] }
    decision: require_approval
"""

RESTART = Action(type="deploy.restart", tags=frozenset({"prod", "write"}), params={})


def restart(service: str | None = None, **kw: object) -> tuple[Action, object]:
    params = {} if service is None else {"service": service}
    action = Action(type="deploy.restart", tags=RESTART.tags, params=params)
    return action, call(kw.pop("method", "POST"), "https://deploy.example/", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rules():
    return policy(RULES)


def test_allow_with_constraints_beats_allow_and_constraints_merge_to_the_strictest(rules) -> None:
    decision = decide(rules, *restart("web", agent="ops-bot"), NOW)
    assert decision.verdict is Verdict.ALLOW_WITH_CONSTRAINTS
    assert decision.rule_ids == ("restarts-short", "restarts-shorter")
    assert decision.matched_rule_ids == ("restarts-allowed", "restarts-short", "restarts-shorter")
    assert decision.constraints == Constraints(timeout_seconds=10, max_request_body_bytes=4096)
    assert decision.reason == "a rule allows this action with constraints"
    assert decision.snapshot_id == rules.snapshot_id
    assert (decision.tier, decision.route) == (None, None)


def test_require_approval_takes_the_highest_tier_and_its_route(rules) -> None:
    decision = decide(rules, *restart("db", agent="ops-bot"), NOW)
    assert decision.verdict is Verdict.REQUIRE_APPROVAL
    assert decision.rule_ids == ("db-needs-ops", "db-needs-two")
    assert (decision.tier, decision.route) == (3, "ops")
    assert decision.reason == "Database restarts need two people"
    assert decision.rollback == "Restart the previous release"
    assert decision.constraints == Constraints()  # constraints only come with that verdict


def test_deny_beats_everything(rules) -> None:
    decision = decide(rules, *restart("payroll", agent="ops-bot"), NOW)
    assert (decision.verdict, decision.rule_ids) == (Verdict.DENY, ("payroll-never",))
    assert decision.reason == "a rule denies this action"
    assert "restarts-allowed" in decision.matched_rule_ids


@pytest.mark.parametrize(
    ("agent", "verdict", "rule_ids"),
    [
        ("other-bot", Verdict.DENY, ("globex-never",)),  # tenant from `agents:`
        ("ops-bot", Verdict.ALLOW_WITH_CONSTRAINTS, ("restarts-short", "restarts-shorter")),
        ("stranger", Verdict.ALLOW_WITH_CONSTRAINTS, ("restarts-short", "restarts-shorter")),
    ],
)
def test_tenant_conditions(rules, agent: str, verdict: Verdict, rule_ids: tuple) -> None:
    decision = decide(rules, *restart("web", agent=agent), NOW)
    assert (decision.verdict, decision.rule_ids) == (verdict, rule_ids)


def test_method_host_and_tags_conditions(rules) -> None:
    decision = decide(rules, *restart("web", method="GET"), NOW)
    assert decision.rule_ids == ("gets-need-approval",)
    assert decision.tier == 1  # require_approval without a tier is tier 1


def test_shadow_rules_record_but_never_change_the_verdict(rules) -> None:
    decision = decide(rules, *restart("web", agent="night-bot"), NOW)
    assert decision.verdict is Verdict.ALLOW_WITH_CONSTRAINTS
    assert decision.shadow == (("night-shadow", Verdict.DENY),)
    assert "night-shadow" not in decision.matched_rule_ids


def test_an_expired_rule_no_longer_applies(rules) -> None:
    before = decide(rules, *restart("web", agent="temp-bot"), NOW)
    after = decide(rules, *restart("web", agent="temp-bot"), NOW + timedelta(hours=1))
    assert (before.verdict, after.verdict) == (Verdict.DENY, Verdict.ALLOW_WITH_CONSTRAINTS)


def test_a_naive_clock_is_taken_as_utc(rules) -> None:
    naive = (NOW + timedelta(hours=1)).replace(tzinfo=None)
    assert decide(rules, *restart("web", agent="temp-bot"), naive).verdict is not Verdict.DENY


def test_no_rule_gives_the_default(rules) -> None:
    decision = decide(rules, Action(type="unclassified"), call("GET", "https://x.example/"), NOW)
    assert decision.verdict is Verdict.DENY
    assert (decision.rule_ids, decision.matched_rule_ids) == ((), ())
    assert decision.reason == "no rule matched; the policy default is deny"


def test_a_require_approval_default_is_tier_one() -> None:
    loaded = policy("default: require_approval\n")
    decision = decide(loaded, Action(type="x"), call("GET", "https://x.example/"), NOW)
    assert (decision.verdict, decision.tier) == (Verdict.REQUIRE_APPROVAL, 1)
    assert decision.reason == "no rule matched; the policy default is require_approval"


def test_a_shadow_policy_allows_and_records_what_it_would_have_decided() -> None:
    loaded = policy(RULES + "mode: shadow\n")
    decision = decide(loaded, *restart("payroll", agent="ops-bot"), NOW)
    assert decision.verdict is Verdict.ALLOW
    assert decision.rule_ids == ()
    assert decision.reason == (
        "the policy is in shadow mode; it would have decided deny: a rule denies this action"
    )
    assert decision.shadow == (
        ("restarts-allowed", Verdict.ALLOW),
        ("restarts-short", Verdict.ALLOW_WITH_CONSTRAINTS),
        ("restarts-shorter", Verdict.ALLOW_WITH_CONSTRAINTS),
        ("payroll-never", Verdict.DENY),
    )
    unmatched = decide(loaded, Action(type="unclassified"), call("GET", "https://x/"), NOW)
    assert unmatched.shadow == (("default", Verdict.DENY),)


def test_rule_lookup_only_touches_rules_for_the_action_type() -> None:
    actions = "\n".join(
        f"  - {{type: a{i}.run, match: {{host: h{i}.example}}}}" for i in range(300)
    )
    rules = "\n".join(
        f"  - {{id: r{i}, when: {{action: a{i % 300}.run}}, decision: allow}}" for i in range(3000)
    )
    loaded = policy(
        f"actions:\n{actions}\nrules:\n{rules}\n"
        "  - {id: g, when: {action: 'a7.*'}, decision: deny}\n"
        "  - {id: any, when: {agent: root}, decision: deny}\n"
    )
    ids = [r.id for r in loaded.rule_index.candidates("a7.run")]
    assert ids == [f"r{i}" for i in range(7, 3000, 300)] + ["g", "any"]
    assert [r.id for r in loaded.rule_index.candidates("a8.run")][-1:] == ["any"]
    assert len(loaded.rule_index.candidates("a8.run")) == 11


def test_a_very_long_action_type_costs_only_the_prefixes_the_policy_uses(rules) -> None:
    long_type = "deploy." + "x" * 1_000_000
    assert [r.id for r in rules.rule_index.candidates(long_type)] == [
        "restarts-shorter",
        "globex-never",
    ]


def test_mcp_session_messages_are_allowed_by_a_built_in_rule(rules) -> None:
    session = Action(type="mcp/session", params={"method": "initialize"})
    decision = decide(rules, session, call("POST", "https://t.example/mcp"), NOW)
    assert (decision.verdict, decision.rule_ids) == (Verdict.ALLOW, ("mcp-session",))


def test_a_policy_rule_can_be_stricter_than_the_built_in_session_rule() -> None:
    loaded = policy("rules:\n  - {id: no-mcp, when: {action: mcp/session}, decision: deny}\n")
    session = Action(type="mcp/session", params={"method": "initialize"})
    decision = decide(loaded, session, call("POST", "https://t.example/mcp"), NOW)
    assert (decision.verdict, decision.rule_ids) == (Verdict.DENY, ("no-mcp",))
    assert decision.matched_rule_ids == ("mcp-session", "no-mcp")


PLAYBOOK = """
actions:
  - type: deploy.restart
    match: { host: deploy.example }
    params: { service: "json:$.service" }
approvals:
  groups: { ops: [dave, erin] }
rules:
  - id: restarts-playbook
    when: { action: deploy.restart }
    decision: allow
    notify: true
  - id: restarts-quiet
    when: { action: deploy.restart, params: { service: web } }
    decision: allow
  - id: db-reviewed
    when: { action: deploy.restart, params: { service: db } }
    decision: require_approval
    route: ops
"""


@pytest.mark.parametrize(("service", "verdict", "notify"), [
    ("cache", Verdict.ALLOW, True),  # the playbook rule alone decides
    ("web", Verdict.ALLOW, True),  # one of the deciding rules asks for it
    ("db", Verdict.REQUIRE_APPROVAL, False),  # held: reviewers hear of it anyway
])
def test_a_playbook_allow_asks_for_a_notification_only_when_it_decides(
        service: str, verdict: Verdict, notify: bool) -> None:
    action, request = restart(service, agent="ops-bot")
    decision = decide(policy(PLAYBOOK), action, request, NOW)  # type: ignore[arg-type]
    assert (decision.verdict, decision.notify) == (verdict, notify)


DLP = """
actions:
  - type: crm.write
    match: { method: POST, host: crm.example }
  - type: mail.send
    match: { method: POST, host: mail.example }
responses:
  recognizers: [{ name: ACME_ACCOUNT_ID, regex: "ACME-[0-9]{8}" }]
rules:
  - id: crm-writes
    when: { action: crm.write }
    decision: allow
  - id: crm-no-ssn
    when: { action: crm.write, request_contains: [US_SSN, CREDIT_CARD] }
    decision: deny
    reason: Personal data may not leave through the CRM
  - id: crm-accounts-reviewed
    when: { action: crm.write, request_contains: ACME_ACCOUNT_ID }
    decision: require_approval
  - id: crm-clean-fast
    when: { action: crm.write, request_contains: EMAIL_ADDRESS }
    decision: allow_with_constraints
    constraints: { timeout_seconds: 5 }
  - id: mail-phone-shadow
    when: { action: mail.send, request_contains: PHONE_NUMBER }
    decision: deny
    mode: shadow
  - id: mail-send
    when: { action: mail.send }
    decision: allow
"""
CRM_WRITE = Action(type="crm.write")


@pytest.fixture(scope="module")
def dlp():
    return policy(DLP)


def crm(found: frozenset[str] | None) -> object:
    request = call("POST", "https://crm.example/notes", json_body={"note": "..."})
    return dataclasses.replace(request, request_entities=found)


@pytest.mark.parametrize(
    ("found", "verdict", "rule_ids"),
    [
        (frozenset(), Verdict.ALLOW, ("crm-writes",)),  # scanned and clean
        (frozenset({"US_SSN"}), Verdict.DENY, ("crm-no-ssn",)),
        (frozenset({"CREDIT_CARD", "URL"}), Verdict.DENY, ("crm-no-ssn",)),  # any one is enough
        (frozenset({"IBAN_CODE"}), Verdict.ALLOW, ("crm-writes",)),  # another type: no match
        (frozenset({"ACME_ACCOUNT_ID"}), Verdict.REQUIRE_APPROVAL, ("crm-accounts-reviewed",)),
        (frozenset({"EMAIL_ADDRESS"}), Verdict.ALLOW_WITH_CONSTRAINTS, ("crm-clean-fast",)),
        # the strictest still wins among DLP rules and the rest
        (frozenset({"US_SSN", "ACME_ACCOUNT_ID", "EMAIL_ADDRESS"}), Verdict.DENY, ("crm-no-ssn",)),
    ],
)
def test_request_contains_applies_when_the_scan_found_any_listed_entity(
    dlp, found: frozenset[str], verdict: Verdict, rule_ids: tuple
) -> None:
    decision = decide(dlp, CRM_WRITE, crm(found), NOW)  # type: ignore[arg-type]
    assert (decision.verdict, decision.rule_ids) == (verdict, rule_ids)


def test_an_unscanned_request_fails_closed(dlp) -> None:
    decision = decide(dlp, CRM_WRITE, crm(None), NOW)  # type: ignore[arg-type]
    assert (decision.verdict, decision.rule_ids) == (Verdict.DENY, ("crm-no-ssn",))
    # refusing rules hold, the rule that allows does not: no allow is earned on an unknown
    assert decision.matched_rule_ids == ("crm-writes", "crm-no-ssn", "crm-accounts-reviewed")
    assert decision.reason == "Personal data may not leave through the CRM"


def test_an_allow_rule_with_request_contains_does_not_apply_when_unscanned() -> None:
    loaded = policy(
        "actions: [{type: crm.write, match: {host: crm.example}}]\n"
        "rules:\n"
        "  - {id: emails-ok, when: {action: crm.write, request_contains: EMAIL_ADDRESS}, "
        "decision: allow}\n"
    )
    unscanned = decide(loaded, CRM_WRITE, crm(None), NOW)  # type: ignore[arg-type]
    assert (unscanned.verdict, unscanned.matched_rule_ids) == (Verdict.DENY, ())
    found = decide(loaded, CRM_WRITE, crm(frozenset({"EMAIL_ADDRESS"})), NOW)  # type: ignore[arg-type]
    assert (found.verdict, found.rule_ids) == (Verdict.ALLOW, ("emails-ok",))


@pytest.mark.parametrize(
    ("found", "shadow"),
    [
        (frozenset({"PHONE_NUMBER"}), (("mail-phone-shadow", Verdict.DENY),)),
        (None, (("mail-phone-shadow", Verdict.DENY),)),  # a refusing rule holds when unscanned
        (frozenset(), ()),
    ],
)
def test_a_shadow_dlp_rule_records_without_changing_the_verdict(
    dlp, found: frozenset[str] | None, shadow: tuple
) -> None:
    request = dataclasses.replace(call("POST", "https://mail.example/"), request_entities=found)
    decision = decide(dlp, Action(type="mail.send"), request, NOW)
    assert (decision.verdict, decision.rule_ids) == (Verdict.ALLOW, ("mail-send",))
    assert decision.shadow == shadow


def test_dlp_entities_is_the_union_over_enforcing_and_shadow_rules(dlp, rules) -> None:
    assert dlp_entities(dlp) == {
        "US_SSN", "CREDIT_CARD", "ACME_ACCOUNT_ID", "EMAIL_ADDRESS", "PHONE_NUMBER"
    }
    assert dlp_entities(rules) == frozenset()  # no rule asks: nothing to scan for


ESCALATION = policy(
    "actions: [{type: mail.send, match: {host: mail.example}}]\n"
    "rules:\n"
    "  - {id: mail, when: {action: mail.send}, decision: allow}\n"
    "  - {id: again, when: {action: mail.send, retries: {gte: 3}}, decision: require_approval}\n"
    "  - {id: odd, when: {anomaly: {gte: 0.8}}, decision: require_approval}\n"
    "  - {id: unsure, when: {confidence: {lt: 0.5}}, decision: deny}\n"
)


@pytest.mark.parametrize(
    ("retries", "anomaly", "headers", "verdict", "rule_ids"),
    [
        (0, 0.0, (), Verdict.ALLOW, ("mail",)),
        (2, 0.0, (), Verdict.ALLOW, ("mail",)),
        (3, 0.0, (), Verdict.REQUIRE_APPROVAL, ("again",)),
        (0, 0.9, (), Verdict.REQUIRE_APPROVAL, ("odd",)),
        (0, 0.0, (("x-agent-confidence", "0.2"),), Verdict.DENY, ("unsure",)),
        (0, 0.0, (("x-agent-confidence", "0.9"),), Verdict.ALLOW, ("mail",)),
        (0, 0.0, (("x-agent-confidence", "unsure"),), Verdict.ALLOW, ("mail",)),
    ],
)
def test_rules_escalate_on_retries_anomaly_and_stated_confidence(
    retries: int, anomaly: float, headers: tuple, verdict: Verdict, rule_ids: tuple
) -> None:
    request = dataclasses.replace(call("POST", "https://mail.example/", headers=headers),
                                  retries=retries, anomaly=anomaly)
    decision = decide(ESCALATION, Action(type="mail.send"), request, NOW)
    assert (decision.verdict, decision.rule_ids) == (verdict, rule_ids)
