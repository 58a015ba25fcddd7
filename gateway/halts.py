"""The kill switch: which halts are in force, and whether one covers a call.

Halts live in the state store (they survive restart); `HaltBoard` is the in-memory index the
proxy checks on every call, replaced whole whenever a halt is set or lifted, so a check is a
few dictionary lookups and a halt takes effect for the very next call.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.hostnames import normalise_host

SCOPES = ("all", "agent", "tenant", "host", "action")


class HaltError(ValueError):
    """A halt request that cannot be honoured as given."""


@dataclass(frozen=True, slots=True)
class Halt:
    id: str
    scope: str
    target: str  # "" for scope "all"; a glob for scope "action"
    reason: str
    actor: str
    created_at: str
    lifted_at: str | None = None
    lifted_by: str | None = None
    mode: str = "halt"  # or "shadow": writes are recorded, not forwarded; reads pass

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "scope": self.scope,
            "target": self.target,
            "reason": self.reason,
            "actor": self.actor,
            "created_at": self.created_at,
            "lifted_at": self.lifted_at,
            "lifted_by": self.lifted_by,
            "mode": self.mode,
            "active": self.lifted_at is None,
        }


def validate_halt(scope: str, target: str | None, reason: str | None) -> tuple[str, str]:
    """Return (scope, target) normalised, or raise HaltError saying what to fix."""
    if scope not in SCOPES:
        raise HaltError(f"unknown halt scope `{scope}`; use one of {', '.join(SCOPES)}")
    if not reason or not reason.strip():
        raise HaltError("a halt needs a `reason`: say why, for the audit trail and the agents")
    target = (target or "").strip()
    if scope == "all":
        if target:
            raise HaltError("scope `all` takes no `target`")
        return scope, ""
    if not target:
        raise HaltError(f"scope `{scope}` needs a `target` naming the {scope} to halt")
    return scope, normalise_host(target) if scope == "host" else target


def check_known(scope: str, target: str, known: set[str]) -> None:
    """A halt on an agent or tenant nobody knows covers nothing: refuse it, name the known."""
    if target not in known:
        names = ", ".join(f"`{name}`" for name in sorted(known)) or "none"
        raise HaltError(f"no {scope} `{target}` is known, so this halt would cover nothing; "
                        f"known: {names}")


READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


def is_write(method: str, tags: object = ()) -> bool:
    """What shadow mode withholds: any method but a read, or an action tagged `write`."""
    return method.upper() not in READ_ONLY or "write" in (tags or ())  # type: ignore[operator]


class _Index:
    def __init__(self, halts: list[Halt]) -> None:
        self._all = next((h for h in halts if h.scope == "all"), None)
        self._exact: dict[tuple[str, str], Halt] = {}
        self._action_globs: list[Halt] = []
        for halt in halts:
            if halt.scope == "action" and any(c in halt.target for c in "*?["):
                self._action_globs.append(halt)
            elif halt.scope != "all":
                self._exact.setdefault((halt.scope, halt.target), halt)

    def match(self, agent: str | None, tenant: str | None, host: str | None,
              action: str | None) -> Halt | None:
        if self._all:
            return self._all
        if not self._exact and not self._action_globs:
            return None
        for scope, value in (("agent", agent), ("tenant", tenant), ("host", host),
                             ("action", action)):
            if value is not None and (halt := self._exact.get((scope, value))):
                return halt
        if action is not None:
            for halt in self._action_globs:
                if fnmatchcase(action, halt.target):
                    return halt
        return None


class HaltBoard:
    """The active halts and shadows, indexed for the per-call check."""

    def __init__(self, halts: list[Halt]) -> None:
        active = [h for h in halts if h.lifted_at is None]
        self.halts = tuple(h for h in active if h.mode == "halt")
        self.shadows = tuple(h for h in active if h.mode == "shadow")
        self._halts = _Index(list(self.halts))
        self._shadows = _Index(list(self.shadows))

    def match(
        self, *, agent: str | None, tenant: str | None, host: str | None, action: str | None,
        write: bool = False,
    ) -> Halt | None:
        """The halt that covers a call with these facts, or None. None facts are not checked.
        A `write` is also covered by a shadow (a halt resumed in shadow mode)."""
        halt = self._halts.match(agent, tenant, host, action)
        if halt is None and write and self.shadows:
            return self._shadows.match(agent, tenant, host, action)
        return halt
