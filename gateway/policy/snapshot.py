"""A loaded policy: the validated model, its snapshot id, and the compiled lookups built from it.

A `Policy` is immutable once built; a reload builds a new one, so a decision always refers to
exactly one snapshot (recorded by its id).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

from gateway.policy.classify import Classifier
from gateway.policy.decide import RuleIndex
from gateway.policy.hosts import HostSet, parse_host_pattern
from gateway.policy.schema import PolicyModel
from gateway.policy.verdict import Verdict


def _plain(value: object) -> object:
    """YAML data as JSON data: keys as text, dates as ISO text, sets (`!!set`) sorted."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def snapshot_id(revision: str, data: object) -> str:
    """`revision:` + 12 hex of the sha256 of the canonical content.

    Canonical content is the parsed data as compact JSON with sorted keys, so comments, quoting,
    key order and whitespace do not change the id; any change of meaning does.
    """
    canonical = json.dumps(
        _plain(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )
    return f"{revision}:{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:12]}"


class Policy:
    """One policy snapshot, ready to classify and decide."""

    def __init__(
        self, model: PolicyModel, *, data: object, text: str, source: str, warnings: list[str]
    ) -> None:
        self.model = model
        self.text = text
        self.source = source
        self.warnings = warnings
        self.snapshot_id = snapshot_id(model.revision, data)
        self.egress = HostSet(map(parse_host_pattern, model.egress.allow))
        self.classifier = Classifier(model.actions)
        self.rule_index = RuleIndex(model.rules)
        self._tenants = {name: agent.tenant for name, agent in model.agents.items()}

    @property
    def name(self) -> str:
        return self.model.policy

    @property
    def revision(self) -> str:
        return self.model.revision

    @property
    def default(self) -> Verdict:
        return self.model.default

    @property
    def shadow_mode(self) -> bool:
        """Whether the whole policy is in `mode: shadow` (it records, never enforces)."""
        return self.model.mode == "shadow"

    @property
    def private_networks_allowed(self) -> bool:
        return self.model.egress.private_networks == "allow"

    def egress_allows(self, host: str, port: int) -> bool:
        """Whether `egress.allow` lets agents reach this host on this port."""
        return self.egress.allows(host, port)

    def agent_tenant(self, agent: str) -> str | None:
        return self._tenants.get(agent)

    @property
    def agent_names(self) -> frozenset[str]:
        return frozenset(self._tenants)

    @property
    def tenant_names(self) -> frozenset[str]:
        return frozenset(t for t in self._tenants.values() if t)

    def __repr__(self) -> str:
        return f"<Policy {self.name} {self.snapshot_id} from {self.source}>"
