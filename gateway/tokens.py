"""Bearer and proxy tokens: random, shown once, stored only as a hash.

A token is `PREFIX` + a public id + `_` + 256 random bits. The store finds the token's row by
its id and compares the SHA-256 of the whole token with the stored hash in constant time
(`hmac.compare_digest`), so timing says nothing about how much of a secret matched. Secrets that
cannot be guessed need no salt or slow hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
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


_ID_LENGTH = 12
_TOKEN = re.compile(r"gh[ar]_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")


def new_token(kind: str) -> str:
    prefix = AGENT_PREFIX if kind == "agent" else ADMIN_PREFIX
    return f"{prefix}{secrets.token_hex(_ID_LENGTH // 2)}_{secrets.token_urlsafe(32)}"


def token_id(token: str) -> str | None:
    """The public id inside a well-formed token; None for anything else."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token).encode(), stored_hash.encode())
