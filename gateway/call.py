"""The plain facts about one outbound call, as every stage of the data path sees them.

The mitmproxy adapters in `addons/` turn a flow into a `Call`; everything in `gateway/` works on
these values only, so the logic can be tested (and replayed from the audit trail) without a proxy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request an agent sent, before any decision."""

    method: str
    scheme: str
    host: str  # lower-case, no port, IDNA (punycode) form
    port: int
    path: str  # without the query string
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # names lower-case; credentials already removed
    body: bytes = b""
    agent: str = "anonymous"
    # Entity types the gateway's scan found in the query string and decoded body (`US_SSN`,
    # ...); empty: scanned and clean; None: not scanned, or the scan failed (undecodable body,
    # over the size cap, analyzer error), which rules with `request_contains` treat fail-closed.
    request_entities: frozenset[str] | None = None
    # How this call compares with the agent's recent calls (`gateway.behaviour`): identical
    # calls seen before it, and how unusual its rate and action type are (0 to 1).
    retries: int = 0
    anomaly: float = 0.0

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        authority = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:  # an IPv6 literal
            authority = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        query = urlencode(self.query, quote_via=quote, safe="/:@!$'()*,;",
                          errors="surrogateescape")
        return f"{self.scheme}://{authority}{self.path}" + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class Action:
    """What a call means: a type such as `email.send`, tags, and parameters pulled from it."""

    type: str
    tags: frozenset[str] = frozenset()
    params: dict[str, object] = field(default_factory=dict)
    matched: str | None = None  # the `actions:` entry that classified it (None: unclassified)
    unreadable: frozenset[str] = frozenset()  # params present without one trustworthy value
