"""Thin mitmproxy adapters, one concern each; `pipeline()` lists them in data-path order.

mitmproxy calls each hook on every addon in list order, so this list is the path of one call:
who is calling, what the call is and what policy says, whether a halt covers it, the answer to
the agent (or the constraints to forward under), a released quarantine answering its retry, the
hold for a reviewer's approval, where exactly it may connect, the scan of the response, the
evidence an incident needs (model calls, documents read, ids of what was changed), and the
durable audit record that must exist before anything goes out.
"""

from __future__ import annotations

from addons.audit import Audit
from addons.decide import Decide
from addons.egress import Egress
from addons.enforce import Enforce
from addons.evidence import KeepEvidence
from addons.halt import HaltCheck, HaltStreams
from addons.hold import Hold
from addons.identify import Identify
from addons.record import RecordEvidence
from addons.release import QuarantineRetry
from addons.scan import ScanResponses
from gateway.services import Services


def pipeline(services: Services) -> list[object]:
    return [
        Identify(services.store, services.policy),
        Decide(services.policy, services.scanner, services.autonomy),
        HaltCheck(services.halts),
        Enforce(),
        QuarantineRetry(services.quarantine),
        Hold(services.approvals, services.grants, services.halts),
        Egress(services.policy, services.address_guard),
        KeepEvidence(services.policy, services.quarantine.evidence),
        ScanResponses(services.policy, services.scanner, services.quarantine, services.audit,
                      services.metrics),
        HaltStreams(services.halts, services.audit),
        RecordEvidence(services.audit, services.quarantine.evidence),
        Audit(services.audit, services.metrics, services.notifier, services.policy),
    ]
