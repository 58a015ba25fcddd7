"""Classification: a request becomes an action (type, tags, params); the first matching entry wins.

MCP over HTTP is understood natively: a `tools/call` becomes the entry's type with `{tool}` filled
in, and the session messages around it (handshake, discovery, ping) become `mcp/session`, which
`decide` allows by a built-in rule unless a policy rule is stricter.

Entries are indexed by host (exact names, and `*.` patterns by parent domain), so the cost of
classifying a call does not grow with the entries written for other hosts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.call import Action, Call
from gateway.policy.hosts import HostPattern, normalise_host, parent_domains, parse_host_pattern
from gateway.policy.params import (
    AMBIGUOUS,
    MISSING,
    UNREADABLE,
    RequestView,
    Source,
    parse_source,
    walk,
)
from gateway.policy.paths import PathPattern, parse_path_pattern
from gateway.policy.schema import ActionEntry

if TYPE_CHECKING:
    from gateway.policy.snapshot import Policy

UNCLASSIFIED = "unclassified"
MCP_SESSION = "mcp/session"
"""The action for MCP session messages on a declared MCP endpoint (see `SESSION_METHODS`)."""
SESSION_METHODS = frozenset(
    {"initialize", "notifications/initialized", "notifications/cancelled", "ping", "tools/list"}
)
"""JSON-RPC methods every MCP client sends around its tool calls: handshake, discovery,
liveness. None of them acts on anything; without them no tool call can be made at all."""
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
"""MCP's recommended tool-name characters (plus `/` and `:` for namespaced tools), 1-128 long.
Any other name (spaces, control or look-alike characters) is not classified: fail closed."""
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _Entry:
    order: int
    template: str
    tags: frozenset[str]
    methods: frozenset[str] | None
    hosts: tuple[HostPattern, ...] | None
    path: PathPattern | None
    mcp: str | None
    params: tuple[tuple[str, Source], ...]

    @classmethod
    def compile(cls, order: int, entry: ActionEntry) -> _Entry:
        match = entry.match
        return cls(
            order=order,
            template=entry.type,
            tags=frozenset(entry.tags),
            methods=frozenset(match.method) if match.method else None,
            hosts=tuple(map(parse_host_pattern, match.host)) if match.host else None,
            path=parse_path_pattern(match.path) if match.path else None,
            mcp=match.mcp,
            params=tuple((name, parse_source(text)) for name, text in entry.params.items()),
        )

    def _captures(self, view: RequestView, host: str, method: str) -> dict[str, str] | None:
        """The path captures when method, host and path match, else None."""
        if self.methods is not None and method not in self.methods:
            return None
        if self.hosts is not None and not any(p.matches(host, view.call.port) for p in self.hosts):
            return None
        return {} if self.path is None else self.path.match(view.segments)

    def classify(self, view: RequestView, host: str, method: str) -> Action | None:
        """The action when this entry matches the call, else None."""
        captures = self._captures(view, host, method)
        if captures is None:
            return None
        action_type, rpc_params = self.template, MISSING
        if self.mcp is not None:
            body = view.json()
            # A batch (JSON array) or a garbled request never matches: fail closed.
            if not isinstance(body, dict) or walk(body, ("method",)) != self.mcp:
                return None
            rpc_params = body.get("params", MISSING)  # ambiguity is judged per param below
            if rpc_params is AMBIGUOUS:
                rpc_params = UNREADABLE
            if "{tool}" in action_type:
                tool = walk(rpc_params, ("name",))
                if not isinstance(tool, str) or not _TOOL_NAME.fullmatch(tool):
                    return None
                action_type = action_type.replace("{tool}", tool)
                if action_type == MCP_SESSION:
                    return None
        params: dict[str, object] = {}
        unreadable: set[str] = set()
        for name, source in self.params:
            value = view.extract(source, captures, rpc_params)
            if value is UNREADABLE:
                unreadable.add(name)
            elif value is not MISSING:
                params[name] = value
        return Action(type=action_type, tags=self.tags, params=params, matched=self.template,
                      unreadable=frozenset(unreadable))

    def is_mcp_endpoint_for(self, view: RequestView, host: str, method: str) -> bool:
        return self.mcp is not None and self._captures(view, host, method) is not None

    def session(self, view: RequestView, host: str, method: str) -> Action | None:
        """An MCP session message sent to this entry's endpoint, as the `mcp/session` action:
        a handshake or discovery message, or a body-less GET (the server's notification
        stream) or DELETE (the end of the session)."""
        if not self.is_mcp_endpoint_for(view, host, method):
            return None
        if method in ("GET", "DELETE") and not view.call.body:
            return Action(type=MCP_SESSION, params={"http": method}, matched=self.template)
        body = view.json()
        rpc_method = walk(body, ("method",)) if isinstance(body, dict) else MISSING
        if rpc_method not in SESSION_METHODS or rpc_method == self.mcp:
            return None
        return Action(type=MCP_SESSION, params={"method": rpc_method}, matched=self.template)


class Classifier:
    """The compiled `actions:` list, indexed by host."""

    def __init__(self, entries: Iterable[ActionEntry]) -> None:
        self._exact: dict[str, list[_Entry]] = {}
        self._wild: dict[str, list[_Entry]] = {}
        self._any: list[_Entry] = []
        for order, entry in enumerate(entries):
            compiled = _Entry.compile(order, entry)
            for pattern in compiled.hosts or ():
                index = self._wild if pattern.wildcard else self._exact
                index.setdefault(pattern.host, []).append(compiled)
            if compiled.hosts is None:
                self._any.append(compiled)
        self._cache: dict[str, tuple[_Entry, ...]] = {}

    def candidates(self, host: str) -> tuple[_Entry, ...]:
        """The entries that can match this host, in policy order."""
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        found = {e.order: e for e in self._exact.get(host, ())}
        for parent in parent_domains(host):
            found.update((e.order, e) for e in self._wild.get(parent, ()))
        found.update((e.order, e) for e in self._any)
        result = tuple(found[order] for order in sorted(found))
        if len(self._cache) >= _CACHE_LIMIT:  # hosts under a `*.` pattern are unbounded
            self._cache.clear()
        self._cache[host] = result
        return result

    def classify(self, view: RequestView) -> Action:
        host = normalise_host(view.call.host)
        method = view.call.method.upper()
        candidates = self.candidates(host)
        # An MCP endpoint claims every request sent to it, whatever the order of entries: a
        # tool call, session plumbing, or unclassified; never a generic entry such as a read
        # (a JSON-RPC batch sent with GET must not pass as `http.read`).
        endpoint = [e for e in candidates if e.is_mcp_endpoint_for(view, host, method)]
        if endpoint:
            for entry in endpoint:
                if (action := entry.classify(view, host, method)) is not None:
                    return action
            for entry in endpoint:
                if (action := entry.session(view, host, method)) is not None:
                    return action
            return Action(type=UNCLASSIFIED)
        for entry in candidates:
            if (action := entry.classify(view, host, method)) is not None:
                return action
        return Action(type=UNCLASSIFIED)


def classify(policy: Policy, call: Call) -> Action:
    """The action this call is, by the first matching `actions:` entry; `unclassified` if none."""
    return policy.classifier.classify(RequestView(call))
