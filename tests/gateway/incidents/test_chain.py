"""The pure parts of the chain: policy diffs, missing dimensions, which tool call became the
call, and how hypotheses are ranked (the whole chain is exercised in tests/e2e)."""

from __future__ import annotations

from gateway.incidents.chain import hypotheses, missing_dimension, produced, rule_changes


def test_rule_changes_are_listed_rule_by_rule_and_key_by_key() -> None:
    before = {"email": {"id": "email", "tier": 2, "route": "leads"}, "old": {"id": "old"}}
    after = {"email": {"id": "email", "tier": 1, "route": "leads"}, "new": {"id": "new"}}
    assert rule_changes(before, after) == [
        "rule email: tier 2 → 1", "rule new added", "rule old removed"]


def test_a_rule_on_the_action_alone_misses_every_other_dimension() -> None:
    assert missing_dimension({"id": "e", "when": {"action": "email.send"}}) is not None
    assert missing_dimension({"id": "e", "when": {"action": "email.send",
                                                  "params": {"to": {"glob": "*"}}}}) is None


def test_a_tool_call_produced_the_call_by_name_or_by_a_parameter() -> None:
    assert produced({"name": "send_email", "arguments": "{}"}, "email.send", [])
    assert produced({"name": "send_email", "arguments": "{}"}, "mcp.send_email", [])
    assert produced({"name": "notify", "arguments": '{"to": "a@b.example"}'}, "email.send",
                    ["a@b.example"])
    assert not produced({"name": "lookup", "arguments": "{}"}, "email.send", ["x@y.example"])


def test_hypotheses_rank_the_layer_with_the_most_direct_evidence_first() -> None:
    layers = {
        "agent": {"documents": [], "model_calls": [
            {"request_id": "req_1", "model": "m", "temperature": 0.1, "produced_the_call": True}]},
        "policy": {"missing_dimensions": [], "changes_from_previous": [], "rules_fired": []},
        "review": {"votes": [{"reviewer": "ann", "flags": ["no reason given"]}]},
    }
    ranked = hypotheses(layers)
    assert [(h["layer"], h["rank"]) for h in ranked] == [("agent", "primary"),
                                                         ("review", "secondary")]
    assert all(h["hypothesis"] is True for h in ranked)
