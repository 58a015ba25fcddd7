"""What an agent sees when Gatehouse refuses a call: DESIGN.md, "What the agent sees".

One function per situation keeps status, error type and required fields together, so every
stage answers the same way and an LLM reading the tool result can tell what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

DECISION_HEADER = "X-Gatehouse-Decision"
REQUEST_ID_HEADER = "X-Gatehouse-Request-Id"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error_type: str
    message: str
    decision: str  # the X-Gatehouse-Decision value
    fields: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, request_id: str) -> bytes:
        error = {"type": self.error_type, "message": self.message, **self.fields,
                 "request_id": request_id}
        return orjson.dumps({"error": error})

    def all_headers(self, request_id: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            DECISION_HEADER: self.decision,
            REQUEST_ID_HEADER: request_id,
            "Cache-Control": "no-store",
            **self.headers,
        }


def denied(reason: str, rule: str | None) -> Refusal:
    return Refusal(403, "denied", f"Gatehouse denied this call: {reason}", "deny",
                   {"rule": rule, "reason": reason})


def halted(halt_id: str, reason: str) -> Refusal:
    return Refusal(403, "halted", f"Gatehouse has halted these calls: {reason}", "halted",
                   {"halt_id": halt_id, "reason": reason})


def shadowed(halt_id: str, reason: str) -> Refusal:
    return Refusal(403, "shadow", "Gatehouse runs these calls in shadow mode after a halt: "
                   f"writes are recorded, not forwarded ({reason})", "shadow",
                   {"halt_id": halt_id, "reason": reason})


def approval_pending(pending_id: str, retry_after: int, reason: str) -> Refusal:
    return Refusal(
        503, "approval_pending",
        f"This call needs a human reviewer's approval ({reason}). Retry the same request "
        f"after {retry_after} s; it passes once approved.",
        "require_approval", {"pending_id": pending_id, "reason": reason},
        {"Retry-After": str(retry_after)},
    )


def approval_denied(pending_id: str, reason: str) -> Refusal:
    return Refusal(403, "approval_denied",
                   f"A reviewer refused this call: {reason}. Do not retry it unchanged.",
                   "approval_denied", {"pending_id": pending_id, "reason": reason})


def approval_expired(pending_id: str, reason: str) -> Refusal:
    return Refusal(403, "approval_expired",
                   f"No reviewer decided on this call in time, so it was refused: {reason}",
                   "approval_expired", {"pending_id": pending_id, "reason": reason})


def quarantined(quarantine_id: str, reason: str) -> Refusal:
    return Refusal(
        502, "quarantined",
        f"Gatehouse held the response to this call for review ({reason}). Retry the same "
        "request once a reviewer has released it.",
        "quarantined", {"quarantine_id": quarantine_id, "reason": reason},
    )


def identity_required(reason: str) -> Refusal:
    return Refusal(
        407, "identity_required",
        f"Gatehouse needs to know which agent is calling: {reason}. Use the proxy URL with "
        "credentials printed by `gatehouse env`.",
        "identity_required", {"reason": reason},
        {"Proxy-Authenticate": 'Basic realm="gatehouse"'},
    )


def gateway_error(reason: str) -> Refusal:
    return Refusal(503, "gateway_error",
                   f"Gatehouse could not decide this call and did not forward it: {reason}",
                   "error", {"reason": reason})
