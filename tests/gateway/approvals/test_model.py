"""Held-call values: a held request survives JSON exactly, and re-deciding sees a plain Call."""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
import pytest

from gateway.approvals.model import (
    FINAL,
    HeldRequest,
    PendingItem,
    State,
    Vote,
    new_pending_id,
)

REQUEST = HeldRequest(
    method="POST", scheme="https", host="mail.example", port=8443, path="/v1/send",
    query=(("to", "zoë@example.com"), ("to", "bob@example.com")),
    headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
             ("X-Trace", "a"), ("x-trace", "b")),
    body=b"\x1f\x8b\x08\x00\x00\xff binary",
)
# mitmproxy keeps bytes that are not UTF-8 as lone surrogates ("surrogateescape")
UNDECODABLE = HeldRequest(
    method="PUT", scheme="http", host="files.example", port=80, path="/a\udcff/b",
    query=(("q", "\udcfe"),), headers=(("X-Name", "\udce9t\udce9"), ("\udcc3\udca9", "v")),
    body=b"",
)


def vote(reviewer: str, verdict: str) -> Vote:
    return Vote(reviewer, verdict, "looks fine", "2026-01-01T00:00:00.000000Z", None)


def item(request: HeldRequest = REQUEST, votes: tuple[Vote, ...] = ()) -> PendingItem:
    return PendingItem(
        id="p_0123456789ab", request_hash="ab" * 32, agent="support-bot", tenant="acme",
        action="email.send", tags=("external",), params={"to": ["zoë@example.com"]},
        rule_ids=("mail-out",), reason="external mail needs a reviewer", rollback=None,
        tier=2, route="support-leads", approvals_needed=1, snapshot_id="1.0:aaaaaaaaaaaa",
        request=request, state=State.PENDING, created_at="2026-01-01T00:00:00.000000Z",
        expires_at="2026-01-01T01:00:00.000000Z", votes=votes)


@pytest.mark.parametrize("request_", [REQUEST, UNDECODABLE], ids=["binary body", "undecodable"])
def test_a_held_request_survives_json_exactly(request_: HeldRequest) -> None:
    text = orjson.dumps(request_.to_json())  # JSON-safe: orjson refuses lone surrogates
    assert HeldRequest.from_json(orjson.loads(text)) == request_


def test_the_body_may_be_kept_apart_from_the_json() -> None:
    head = REQUEST.to_json(with_body=False)
    assert "body_b64" not in head
    assert HeldRequest.from_json(head, body=REQUEST.body) == REQUEST


@pytest.mark.parametrize("damage, complaint", [
    (lambda d: d.pop("host"), "without `host`"),
    (lambda d: d.pop("body_b64"), "without `body_b64`"),
    (lambda d: d.update(port="443"), "integer port"),
    (lambda d: d.update(port=True), "integer port"),
    (lambda d: d.update(body_b64="not base64!"), "base64"),
    (lambda d: d.update(headers=[["only-a-name"]]), r"\[name, value\] pair"),
    (lambda d: d.update(query={"to": "bob"}), "list of pairs"),
    (lambda d: d.update(path=7), "expected a string"),
])
def test_anything_to_json_would_not_write_is_refused(
        damage: Callable[[dict[str, object]], object], complaint: str) -> None:
    data = REQUEST.to_json()
    damage(data)
    with pytest.raises(ValueError, match=complaint):
        HeldRequest.from_json(data)


def test_re_deciding_sees_the_call_the_policy_saw() -> None:
    call = REQUEST.to_call("support-bot", b'{"to": "bob@example.com"}')
    assert call.agent == "support-bot"
    assert call.body == b'{"to": "bob@example.com"}'
    assert call.headers == (("content-type", "application/json"),
                            ("content-encoding", "gzip"), ("x-trace", "a"), ("x-trace", "b"))
    assert call.url == ("https://mail.example:8443/v1/send"
                        "?to=zo%C3%AB@example.com&to=bob@example.com")


def test_approved_is_not_final_because_it_is_consumed_once_forwarded() -> None:
    assert FINAL == {State.CONSUMED, State.DENIED, State.EXPIRED, State.CANCELLED}
    assert State.PENDING not in FINAL and State.APPROVED not in FINAL


def test_pending_ids_are_short_and_unguessable() -> None:
    ids = {new_pending_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"p_[0-9a-f]{12}", i) for i in ids)


def test_only_approve_votes_count_as_approvals() -> None:
    votes = (vote("ann", "approve"), vote("bo", "deny"), vote("cy", "approve"))
    assert item(votes=votes).approvals == 2
    assert item().approvals == 0


def test_the_summary_is_json_and_leaves_the_body_out() -> None:
    summary = item(UNDECODABLE, (vote("ann", "approve"),)).to_json()
    decoded = orjson.loads(orjson.dumps(summary))
    assert decoded["body_size"] == 0 and "body_b64" not in decoded["request"]
    assert decoded["state"] == "pending" and decoded["approvals"] == 1
    assert decoded["votes"] == [{"reviewer": "ann", "verdict": "approve",
                                 "reason": "looks fine", "at": "2026-01-01T00:00:00.000000Z",
                                 "opened_at": None}]
    assert item().to_json()["body_size"] == len(REQUEST.body)
