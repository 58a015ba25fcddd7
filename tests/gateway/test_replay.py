"""Replay: a candidate policy against the calls on record; every verdict that would change."""

from __future__ import annotations

from gateway.approvals.model import HeldRequest, PendingItem, State
from gateway.evidence import envelope
from gateway.policy import load_policy_text
from gateway.replay import rebuild, replay

BASE = """\
version: 1
policy: replay
revision: "{revision}"
egress: {{allow: [{hosts}]}}
actions:
  - type: payments.refund
    match: {{method: POST, host: api.stripe.com, path: /v1/refunds}}
    params: {{amount_cents: "json:$.amount"}}
  - {{type: docs.read, match: {{method: GET, host: docs.example}}}}
rules:
{rules}
"""
HOSTS = "api.stripe.com, docs.example, tools.example"


def policy(rules: str, hosts: str = HOSTS):  # type: ignore[no-untyped-def]
    return load_policy_text(BASE.format(revision="2", hosts=hosts, rules=rules))


def record(n: int, method: str, url: str, verdict: str | None, **extra: object
           ) -> dict[str, object]:
    return {"seq": n, "ts": f"2026-06-25T09:00:{n:02d}.000000Z", "request_id": f"req_{n}",
            "agent": "support-bot", "method": method, "url": url, "verdict": verdict,
            "rule_ids": ["r"], **extra}


def never_held(_: str) -> PendingItem | None:
    return None


ALLOW_ALL = ("  - {id: reads, when: {action: docs.read}, decision: allow}\n"
             "  - {id: refunds, when: {action: payments.refund}, decision: allow}\n")


def test_only_the_calls_whose_verdict_changes_are_listed() -> None:
    stricter = policy("  - {id: reads, when: {action: docs.read}, decision: allow}\n"
                      "  - {id: big, when: {action: payments.refund, params: {amount_cents: "
                      "{gte: 10000}}}, decision: require_approval}\n"
                      "  - {id: small, when: {action: payments.refund}, decision: allow}\n")
    records = [
        record(1, "GET", "https://docs.example/a", "allow"),
        record(2, "POST", "https://api.stripe.com/v1/refunds", "allow", action="payments.refund",
               params={"amount_cents": 25000}),
        record(3, "POST", "https://api.stripe.com/v1/refunds", "allow", action="payments.refund",
               params={"amount_cents": 500}),
    ]
    report = replay(stricter, records, never_held)
    assert (report.replayed, report.exact, report.skipped) == (3, 0, 0)
    [change] = report.changes
    assert (change.request_id, change.was, change.would_be, change.rules_would_be,
            change.fidelity) == ("req_2", "allow", "require_approval", ("big",), "url")
    assert "1 would change" in report.format()


def test_a_host_dropped_from_egress_is_a_denial() -> None:
    narrower = policy(ALLOW_ALL, hosts="api.stripe.com")
    [change] = replay(narrower, [record(1, "GET", "https://docs.example/a", "allow")],
                      never_held).changes
    assert (change.would_be, change.rules_would_be) == ("deny", ("egress",))


def test_a_held_call_is_rebuilt_exactly_from_the_request_that_was_kept() -> None:
    item = PendingItem(
        id="p_1", request_hash="ab" * 32, agent="support-bot", tenant=None,
        action="payments.refund", tags=(), params={"amount_cents": 25000}, rule_ids=("big",),
        reason="r", rollback=None, tier=1, route=None, approvals_needed=1, snapshot_id="1:x",
        request=HeldRequest("POST", "https", "api.stripe.com", 443, "/v1/refunds", (),
                            (("Content-Type", "application/json"),), b'{"amount": 25000}'),
        state=State.CONSUMED, created_at="2026-06-25T09:00:00.000000Z",
        expires_at="2026-06-25T10:00:00.000000Z")
    on_record = record(1, "POST", "https://api.stripe.com/v1/refunds", "require_approval",
                       pending_id="p_1", params={})
    rebuilt = rebuild(on_record, {"p_1": item}.get)
    assert rebuilt is not None and rebuilt[1] == "exact"
    assert rebuilt[0].body == b'{"amount": 25000}'
    report = replay(policy(ALLOW_ALL), [on_record], {"p_1": item}.get)
    assert report.exact == 1
    assert [(c.would_be, c.fidelity) for c in report.changes] == [("allow", "exact")]


def test_records_without_a_verdict_and_connects_are_skipped() -> None:
    records = [record(1, "GET", "https://docs.example/a", None),
               record(2, "CONNECT", "docs.example:443", "allow")]
    report = replay(policy(ALLOW_ALL), records, never_held)
    assert (report.replayed, report.skipped, report.changes) == (0, 2, [])


def test_a_call_classified_by_its_body_keeps_its_recorded_action() -> None:
    mcp = record(1, "POST", "https://tools.example/mcp", "allow", action="mcp.delete_file",
                 tags=["write"], params={"path": "/etc"})
    deletes = policy(ALLOW_ALL + "  - {id: no-deletes, when: {action: \"mcp.delete_*\"}, "
                     "decision: deny}\n")
    [change] = replay(deletes, [mcp], never_held).changes
    assert (change.action, change.would_be) == ("mcp.delete_file", "deny")


def test_a_call_whose_request_was_kept_is_rebuilt_exactly() -> None:
    request = envelope({"method": "POST", "url": "https://api.stripe.com/v1/refunds"},
                       [("Content-Type", "application/json")], b'{"amount": 25000}')
    on_record = record(1, "POST", "https://api.stripe.com/v1/refunds", "allow", params={})
    rebuilt = rebuild(on_record, never_held, {"req_1": request}.get)
    assert rebuilt is not None and rebuilt[1] == "exact"
    assert rebuilt[0].body == b'{"amount": 25000}'
    assert rebuilt[0].header("content-type") == "application/json"
    stricter = policy(ALLOW_ALL + "  - {id: big, when: {action: payments.refund, params: "
                      "{amount_cents: {gte: 10000}}}, decision: deny}\n")
    report = replay(stricter, [on_record], never_held, {"req_1": request}.get)
    assert [(c.would_be, c.fidelity) for c in report.changes] == [("deny", "exact")]
