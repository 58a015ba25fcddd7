"""Bearer and proxy tokens: random, shown once, stored only as a hash.

Tokens carry 256 bits of randomness, so a plain SHA-256 is a sound one-way store (no salt or
slow hash is needed for secrets that cannot be guessed). Lookups go by hash; the final equality
is checked with `hmac.compare_digest` so timing says nothing about how much of a token matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What an admin-API token may do; agents have no role and never reach the admin API."""

    REVIEWER = "reviewer"
    RESPONDER = "responder"
    AUDITOR = "auditor"
    ADMIN = "admin"


AGENT_PREFIX = "gha_"
ADMIN_PREFIX = "ghr_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token belongs to."""

    kind: str  # "agent" or "person"
    name: str
    role: Role | None = None

    def may(self, *roles: Role) -> bool:
        return self.kind == "person" and (self.role is Role.ADMIN or self.role in roles)


def new_token(kind: str) -> str:
    prefix = AGENT_PREFIX if kind == "agent" else ADMIN_PREFIX
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
