"""The quarantine service: a held response waits for a reviewer, across restarts, and a release
is delivered to one retry of the same call."""

from __future__ import annotations

import asyncio

import pytest

from gateway.audit import AuditLog
from gateway.evidence import EvidenceStore
from gateway.postgres.quarantine import PostgresQuarantineStore
from gateway.quarantine.service import Call, QuarantineRefused, QuarantineService
from gateway.quarantine.store import QuarantineStore, ReleaseAs, SQLiteQuarantineStore, State
from gateway.scan.redact import Outcome, Result, Verdict
from tests.gateway.postgres.places import Place, store_fixtures

CALL = Call(agent="support-bot", request_id="req_1", request_hash="h1", action="crm.read",
            method="GET", url="https://crm.example/customers/1")
HEADERS = [["content-type", "application/json"], ["content-encoding", "identity"]]
RESULT = Result(Verdict(Outcome.QUARANTINE), b'{"ssn":"<US_SSN>"}', None)


where, _ = store_fixtures(SQLiteQuarantineStore, PostgresQuarantineStore)  # a service each


def open_service(where: Place[QuarantineStore]) -> QuarantineService:
    state_dir = where.path.parent
    return QuarantineService(where.open(),
                             EvidenceStore(state_dir / "evidence"),
                             AuditLog(state_dir / "audit.db"))


def test_a_held_item_survives_a_restart_and_its_release_is_delivered_once(
        where: Place[QuarantineStore]) -> None:
    async def main() -> None:
        service = open_service(where)
        item = service.hold(CALL, 200, HEADERS, b'{"ssn":"536-22-8726"}', RESULT)
        service.store.close()

        service = open_service(where)  # a restarted gateway
        still = await service.retry("support-bot", "h1", "req_2")
        assert still is not None and still.response is None and still.item.id == item.id
        assert await service.retry("other-bot", "h1", "req_3") is None

        await service.release(item.id, ReleaseAs.REDACTED, "plan only", "erin")
        delivered = await service.retry("support-bot", "h1", "req_4")
        assert delivered is not None and delivered.response is not None
        assert delivered.response.body == b'{"ssn":"<US_SSN>"}'
        assert ["content-encoding", "identity"] not in delivered.response.headers
        assert delivered.item.state is State.DELIVERED
        assert delivered.item.delivered_to == "req_4"
        assert await service.retry("support-bot", "h1", "req_5") is None
        service.store.close()

    asyncio.run(main())


def test_a_decided_item_cannot_be_decided_again(where: Place[QuarantineStore]) -> None:
    async def main() -> None:
        service = open_service(where)
        item = service.hold(CALL, 200, HEADERS, b"{}", RESULT)
        await service.discard(item.id, "not needed", "erin")
        with pytest.raises(QuarantineRefused) as refused:
            await service.release(item.id, ReleaseAs.ORIGINAL, "x", "admin")
        assert refused.value.status == 409
        service.store.close()

    asyncio.run(main())
