"""The values of a held call: the request as the agent sent it, the votes on it, its state.

A held call is forwarded byte for byte once approved, so `HeldRequest` keeps the raw body and
the header names as sent; `to_call` rebuilds the `Call` the policy decides on when an approval
is re-checked under a newer policy.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway.call import Call


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # not final: it becomes CONSUMED once the call is forwarded
    CONSUMED = "consumed"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL: frozenset[State] = frozenset({State.CONSUMED, State.DENIED, State.EXPIRED,
                                     State.CANCELLED})


def new_pending_id() -> str:
    return "p_" + secrets.token_hex(6)


def _text_json(text: str) -> str | dict[str, str]:
    """`text` as JSON can hold it. mitmproxy keeps undecodable bytes of a path or header as lone
    surrogates, which JSON cannot carry: those go as base64 of their surrogate-passing UTF-8,
    so every string comes back exactly as it was."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return {"b64": base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()}
    return text


def _text_from_json(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        return base64.b64decode(value["b64"], validate=True).decode("utf-8", "surrogatepass")
    raise ValueError(f"expected a string, got {value!r}")


def _pairs_from_json(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of pairs, got {value!r}")
    pairs = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"expected a [name, value] pair, got {pair!r}")
        pairs.append((_text_from_json(pair[0]), _text_from_json(pair[1])))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """The request exactly as it will be forwarded if approved."""

    method: str
    scheme: str
    host: str
    port: int
    path: str  # without the query string
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]  # names as sent (case kept), credentials removed
    body: bytes  # raw, possibly content-encoded: forwarded byte for byte

    def to_call(self, agent: str, decoded_body: bytes) -> Call:
        """The call the policy sees (header names lower-cased, body decoded by the caller)."""
        return Call(method=self.method, scheme=self.scheme, host=self.host, port=self.port,
                    path=self.path, query=self.query,
                    headers=tuple((k.lower(), v) for k, v in self.headers),
                    body=decoded_body, agent=agent)

    def to_json(self, *, with_body: bool = True) -> dict[str, object]:
        """JSON-safe and lossless; without the body where it is kept apart (a BLOB, a summary)."""
        data: dict[str, object] = {
            "method": _text_json(self.method),
            "scheme": _text_json(self.scheme),
            "host": _text_json(self.host),
            "port": self.port,
            "path": _text_json(self.path),
            "query": [[_text_json(k), _text_json(v)] for k, v in self.query],
            "headers": [[_text_json(k), _text_json(v)] for k, v in self.headers],
        }
        if with_body:
            data["body_b64"] = base64.b64encode(self.body).decode()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object], body: bytes | None = None) -> HeldRequest:
        """The inverse of `to_json`; `body` when it was kept apart, else `body_b64` is required.
        Raises ValueError for anything `to_json` would not have written."""
        try:
            port = data["port"]
            if not isinstance(port, int) or isinstance(port, bool):
                raise ValueError(f"expected an integer port, got {port!r}")
            if body is None:
                body_b64 = data["body_b64"]
                if not isinstance(body_b64, str):
                    raise ValueError(f"expected base64 text in `body_b64`, got {body_b64!r}")
                body = base64.b64decode(body_b64, validate=True)
            return cls(method=_text_from_json(data["method"]),
                       scheme=_text_from_json(data["scheme"]), host=_text_from_json(data["host"]),
                       port=port, path=_text_from_json(data["path"]),
                       query=_pairs_from_json(data["query"]),
                       headers=_pairs_from_json(data["headers"]), body=body)
        except KeyError as e:
            raise ValueError(f"held request without `{e.args[0]}`") from e


@dataclass(frozen=True, slots=True)
class Vote:
    reviewer: str
    verdict: str  # "approve" | "deny"
    reason: str
    at: str  # UTC ISO, gateway.clock format
    opened_at: str | None  # when this reviewer first opened the item (minimum review time)

    def to_json(self) -> dict[str, object]:
        return {"reviewer": self.reviewer, "verdict": self.verdict, "reason": self.reason,
                "at": self.at, "opened_at": self.opened_at}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """What queue statistics need of an item: where it waited and for how long."""

    route: str | None
    tier: int
    state: State
    created_at: str
    decided_at: str | None
    assigned_to: str | None


@dataclass(frozen=True, slots=True)
class PendingItem:
    """One held call: what the policy said about it, the request itself, and its review."""

    id: str  # "p_" + 12 hex
    request_hash: str
    agent: str
    tenant: str | None
    action: str
    tags: tuple[str, ...]
    params: dict[str, object]
    rule_ids: tuple[str, ...]
    reason: str
    rollback: str | None
    tier: int
    route: str | None
    approvals_needed: int
    snapshot_id: str
    request: HeldRequest
    state: State
    created_at: str
    expires_at: str
    decided_at: str | None = None
    outcome_reason: str | None = None
    decided_snapshot_id: str | None = None  # the snapshot the approval was re-checked under
    votes: tuple[Vote, ...] = ()
    escalation_level: int = 0  # how many times it moved up `approvals.escalation`
    earlier_routes: tuple[str | None, ...] = ()  # groups that had it before `route`, oldest
    escalate_at: str | None = None  # when it moves to the next group; None: it stays
    expiry_notice_at: str | None = None  # when "expiring soon" is sent; None once sent
    assigned_to: str | None = None  # the reviewer asked to look first; None: anyone in the group
    assigned_at: str | None = None  # when it was (re)assigned: round-robin order
    second_review: bool = False  # drawn for a second review: needs one approval more

    @property
    def reviewer_groups(self) -> tuple[str | None, ...]:
        """Every group that has had the item: their members may vote (None: any reviewer)."""
        return (*self.earlier_routes, self.route)

    @property
    def approvals(self) -> int:
        return sum(1 for vote in self.votes if vote.verdict == "approve")

    def to_json(self) -> dict[str, object]:
        """The summary a list shows: everything but the request body (only its size)."""
        return {
            "id": self.id,
            "state": self.state.value,
            "agent": self.agent,
            "tenant": self.tenant,
            "action": self.action,
            "tags": list(self.tags),
            "params": self.params,
            "rule_ids": list(self.rule_ids),
            "reason": self.reason,
            "rollback": self.rollback,
            "tier": self.tier,
            "route": self.route,
            "escalation_level": self.escalation_level,
            "earlier_routes": list(self.earlier_routes),
            "escalate_at": self.escalate_at,
            "assigned_to": self.assigned_to,
            "second_review": self.second_review,
            "approvals": self.approvals,
            "approvals_needed": self.approvals_needed,
            "snapshot_id": self.snapshot_id,
            "request_hash": self.request_hash,
            "request": self.request.to_json(with_body=False),
            "body_size": len(self.request.body),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_at": self.decided_at,
            "outcome_reason": self.outcome_reason,
            "decided_snapshot_id": self.decided_snapshot_id,
            "votes": [vote.to_json() for vote in self.votes],
        }
