"""Pre-approved playbook actions: a rule with `decision: allow` (or `allow_with_constraints`)
and `notify: true` lets the call through at once and tells the reviewers' webhooks that it did.

The message is queued once the call's audit record is written and nothing refused it (a halt,
the egress check, a failed audit append), so reviewers hear only of calls that actually go
out; queueing never waits for a receiver, so the call is not delayed. A delivery that fails is
audited as `notify.failed`, as for held calls. The message names agent, action, rules, reason
and request id, never the body or the params.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.approvals.notify import Notifier, allowed_message
from gateway.clock import utc_now_iso

PASSED = frozenset({"allow", "allow_with_constraints"})  # outcomes of a call that went out


def notify_allowed(notifier: Notifier, record: Mapping[str, object], *, asked: bool) -> None:
    """Queue the message for a call whose `call.decided` `record` was written, if its deciding
    rules `asked` for one and it passed."""
    if not asked or not notifier.enabled or record["decision"] not in PASSED:
        return
    rule_ids = record["rule_ids"]
    assert isinstance(rule_ids, list)
    notifier.send(allowed_message(
        agent=str(record["agent"]), tenant=record["tenant"],  # type: ignore[arg-type]
        action=str(record["action"]), verdict=str(record["decision"]), rule_ids=rule_ids,
        reason=str(record["reason"]), request_id=str(record["request_id"]),
        snapshot_id=str(record["snapshot_id"]), at=utc_now_iso()))
