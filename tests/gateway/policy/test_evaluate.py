"""The reference policy behaves exactly as its comments say, call by call."""

import pytest

from gateway.call import Call
from gateway.policy import Constraints, Verdict, evaluate, load_policy_text

from .conftest import ACME, NOW, call, mcp

A = Verdict.ALLOW
AWC = Verdict.ALLOW_WITH_CONSTRAINTS
RA = Verdict.REQUIRE_APPROVAL
D = Verdict.DENY
SEND = "https://api.sendgrid.com/v3/mail/send"
REFUNDS = "https://api.stripe.com/v1/refunds"
MCP_URL = "https://tools.acme.internal/mcp"


def email(to: str) -> Call:
    return call("POST", SEND, json_body={"personalizations": [{"to": [{"email": to}]}]})


# (what, request, verdict, winning rules, tier, route)
TABLE = [
    (
        "refund of 5000 cents",
        call("POST", REFUNDS, form={"amount": "5000"}),
        AWC,
        ("small-refunds",),
        None,
        None,
    ),
    (
        "refund of 10000 cents",
        call("POST", REFUNDS, form={"amount": "10000"}),
        RA,
        ("refunds-need-finance",),
        2,
        "finance-approvers",
    ),
    (
        "refund of 25000 cents",
        call("POST", REFUNDS, form={"amount": "25000"}),
        RA,
        ("refunds-need-finance",),
        2,
        "finance-approvers",
    ),
    ("refund with no amount", call("POST", REFUNDS, form={"charge": "ch_1"}), D, (), None, None),
    (
        "refund with a garbled amount",
        call("POST", REFUNDS, form={"amount": "50 00"}),
        D,
        (),
        None,
        None,
    ),
    (
        "refund amount sent twice (unreadable: the stricter reading wins)",
        call("POST", REFUNDS, form=[("amount", "1"), ("amount", "1")]),
        RA,
        ("refunds-need-finance",),
        2,
        "finance-approvers",
    ),
    (
        "refund amount in query and body (unreadable: the stricter reading wins)",
        call("POST", REFUNDS + "?amount=99999", form={"amount": "1"}),
        RA,
        ("refunds-need-finance",),
        2,
        "finance-approvers",
    ),
    (
        "email to a competitor",
        email("x@competitor.example"),
        D,
        ("no-email-to-competitors",),
        None,
        None,
    ),
    (
        "email to a competitor, shouting",
        email("X@COMPETITOR.EXAMPLE"),
        D,
        ("no-email-to-competitors",),
        None,
        None,
    ),
    (
        "email to a customer",
        email("jane@customer.example"),
        RA,
        ("outbound-email",),
        1,
        "support-leads",
    ),
    (
        "email with no recipient",
        call("POST", SEND, json_body={}),
        RA,
        ("outbound-email",),
        1,
        "support-leads",
    ),
    (
        "MCP delete_file",
        call("POST", MCP_URL, json_body=mcp("delete_file", {"path": "/a"})),
        RA,
        ("mcp-deletes",),
        3,
        "ops-approvers",
    ),
    (
        "MCP read_file",
        call("POST", MCP_URL, json_body=mcp("read_file", {"path": "/a"})),
        A,
        ("mcp-reads",),
        None,
        None,
    ),
    (
        "MCP write_file (no rule)",
        call("POST", MCP_URL, json_body=mcp("write_file")),
        D,
        (),
        None,
        None,
    ),
    ("MCP batch", call("POST", MCP_URL, json_body=[mcp("read_file")]), D, (), None, None),
    (
        "MCP handshake",
        call("POST", MCP_URL, json_body={"jsonrpc": "2.0", "id": 1, "method": "initialize"}),
        A,
        ("mcp-session",),
        None,
        None,
    ),
    (
        "GitHub POST",
        call("POST", "https://api.github.com/repos/a/b/issues"),
        RA,
        ("github-writes",),
        1,
        "ops-approvers",
    ),
    ("GitHub GET", call("GET", "https://api.github.com/repos/a/b"), A, ("reads",), None, None),
    (
        "OpenAI POST",
        call("POST", "https://api.openai.com/v1/chat/completions"),
        A,
        ("model-calls",),
        None,
        None,
    ),
    ("a slack subdomain", call("GET", "https://hooks.slack.com/x"), A, ("reads",), None, None),
    ("slack.com itself", call("GET", "https://slack.com/x"), D, ("egress",), None, None),
    (
        "stripe on 443",
        call("GET", "https://api.stripe.com:443/v1/charges"),
        A,
        ("reads",),
        None,
        None,
    ),
    (
        "stripe on 8443",
        call("GET", "https://api.stripe.com:8443/v1/charges"),
        D,
        ("egress",),
        None,
        None,
    ),
    ("an unlisted host", call("GET", "https://evil.example/"), D, ("egress",), None, None),
    ("a POST no action describes", call("POST", "https://docs.acme.example/x"), D, (), None, None),
]


@pytest.mark.parametrize(
    ("request_", "verdict", "rule_ids", "tier", "route"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_acme(acme, request_: Call, verdict, rule_ids, tier, route) -> None:
    _, decision = evaluate(acme, request_, NOW)
    assert (decision.verdict, decision.rule_ids, decision.tier, decision.route) == (
        verdict,
        rule_ids,
        tier,
        route,
    )
    assert decision.snapshot_id == acme.snapshot_id


def test_small_refund_gets_a_30_second_timeout(acme) -> None:
    _, decision = evaluate(acme, call("POST", REFUNDS, form={"amount": "5000"}), NOW)
    assert decision.constraints == Constraints(timeout_seconds=30)


def test_competitor_email_is_denied_even_though_outbound_email_matched(acme) -> None:
    _, decision = evaluate(acme, email("x@competitor.example"), NOW)
    assert decision.matched_rule_ids == ("outbound-email", "no-email-to-competitors")
    assert decision.reason == "Never email a competitor"


def test_mcp_delete_carries_the_rule_reason_and_the_action(acme) -> None:
    action, decision = evaluate(
        acme, call("POST", MCP_URL, json_body=mcp("delete_file", {"path": "/a"})), NOW
    )
    assert (action.type, action.params) == ("mcp.delete_file", {"path": "/a"})
    assert decision.reason == "Deleting files needs two people"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example/", "host `evil.example` is not in the egress allowlist"),
        ("https://slack.com/", "host `slack.com` is not in the egress allowlist"),
        (
            "https://api.stripe.com:8443/",
            "port 8443 of host `api.stripe.com` is not in the egress allowlist",
        ),
    ],
)
def test_egress_refusals_name_the_host(acme, url: str, reason: str) -> None:
    action, decision = evaluate(acme, call("GET", url), NOW)
    assert action.type == "unclassified"
    assert (decision.verdict, decision.rule_ids, decision.reason) == (D, ("egress",), reason)
    assert decision.matched_rule_ids == ("egress",)


def test_a_shadow_policy_records_an_egress_refusal_without_enforcing_it() -> None:
    shadow = load_policy_text(
        ACME.read_text().replace("default: deny", "default: deny\nmode: shadow")
    )
    action, decision = evaluate(shadow, call("POST", "https://evil.example/"), NOW)
    assert decision.verdict is A
    assert decision.shadow == (("egress", D), ("default", D))
    assert decision.reason == (
        "the policy is in shadow mode; it would have decided deny: "
        "host `evil.example` is not in the egress allowlist"
    )
    assert action.type == "unclassified"
