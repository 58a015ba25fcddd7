"""Flow metadata keys: the contract between the stages. Values are plain JSON-like data."""

REQUEST_ID = "gatehouse.request_id"
AGENT = "gatehouse.agent"
TENANT = "gatehouse.tenant"
ACTION = "gatehouse.action"  # {"type", "tags", "params"}
DECISION = "gatehouse.decision"  # {"verdict", "rule_ids", "reason", "snapshot_id", ...}
REQUEST_HASH = "gatehouse.request_hash"
REFUSED_BY = "gatehouse.refused_by"  # the stage that answered the agent itself
REFUSAL = "gatehouse.refusal"  # the error type the agent received
REFUSAL_REASON = "gatehouse.refusal_reason"  # why, in the words the agent received
HALT_ID = "gatehouse.halt_id"
PENDING_ID = "gatehouse.pending_id"  # the held item this call is (or was) attached to
APPROVED_BY = "gatehouse.approved_by"  # reviewers whose approval released this call
ERROR = "gatehouse.error"  # an internal error that made a stage refuse
DIALLED = "gatehouse.dialled"  # the checked address the call was sent to
STARTED = "gatehouse.started"  # perf_counter at the first request hook
QUARANTINE_ID = "gatehouse.quarantine_id"  # the held response this call produced or received
DELIVERED_FROM_QUARANTINE = "gatehouse.delivered_from_quarantine"  # released response served
REQUEST_ENTITIES = "gatehouse.request_entities"  # entity types found in the request (DLP)
SIGNALS = "gatehouse.signals"  # {"retries", "anomaly", "confidence"}: gateway.behaviour
EVIDENCE = "gatehouse.evidence"  # {"request", "response", "keep"}: digests of kept bodies
