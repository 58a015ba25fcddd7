"""Webhook notifications: the Slack-compatible message, and delivery to real receivers on
127.0.0.1 that never holds up the caller, retries what may succeed, and audits what failed."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from gateway.approvals.model import HeldRequest, PendingItem, State, Vote
from gateway.approvals.notify import (
    Event,
    Notifier,
    allowed_message,
    check_url,
    halt_message,
    message,
    url_host,
)
from gateway.audit import AuditLog
from gateway.halts import Halt

AT = "2026-01-01T00:00:00.000000Z"
SECRET_PATH = "/services/T000/B000/very-secret"


def item(**changes: object) -> PendingItem:
    fields: dict[str, object] = dict(
        id="p_0123456789ab", request_hash="ab" * 32, agent="ops-bot", tenant="acme",
        action="github.write", tags=("write",), params={"repo": "x"}, rule_ids=("gh",),
        reason="GitHub writes are reviewed", rollback=None, tier=1, route="ops",
        approvals_needed=1, snapshot_id="1:aaaaaaaaaaaa",
        request=HeldRequest(method="PUT", scheme="https", host="api.github.com", port=443,
                            path="/x", query=(), headers=(), body=b"secret body"),
        state=State.PENDING, created_at=AT, expires_at="2026-01-01T04:00:00.000000Z")
    fields.update(changes)
    return PendingItem(**fields)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real webhook receiver in the test's event loop: answers `statuses` in turn, then 200,
    after `delay` seconds each."""

    def __init__(self, statuses: tuple[int, ...] = (), delay: float = 0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.received: list[dict[str, object]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SECRET_PATH}"

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        await asyncio.sleep(self.delay)
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@asynccontextmanager
async def receiving(*receivers: Receiver) -> AsyncIterator[None]:
    runners = []
    for receiver in receivers:
        app = web.Application()
        app.router.add_post(SECRET_PATH, receiver._hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        receiver.port = free_port()
        await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
        runners.append(runner)
    try:
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


async def until(condition: Callable[[], object], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.db")
    yield log
    log.close()


def failures(audit: AuditLog) -> list[dict[str, object]]:
    return audit.query(event="notify.failed", limit=1000)


def notify(notifier: Notifier, event: Event = Event.NEW, **changes: object) -> None:
    notifier.notify(event, item(**changes), at=AT, on_timeout="deny")


# --- the message ---------------------------------------------------------------------------

def test_a_message_is_slack_compatible_and_carries_the_facts_for_machines() -> None:
    sent = message(Event.NEW, item(), at=AT, on_timeout="deny")
    assert orjson.loads(orjson.dumps(sent)) == sent
    assert "Approval needed" in str(sent["text"]) and "github.write" in str(sent["text"])
    section, context = sent["blocks"]  # type: ignore[misc]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert context["type"] == "context" and "/v1/pending/p_0123456789ab" in str(context)
    assert sent["gatehouse"] == {
        "event": "new", "pending_id": "p_0123456789ab", "state": "pending", "agent": "ops-bot",
        "tenant": "acme", "action": "github.write", "tier": 1, "route": "ops",
        "escalation_level": 0, "earlier_routes": [], "assigned_to": None, "approvals": 0,
        "approvals_needed": 1, "second_review": False, "reason": "GitHub writes are reviewed",
        "outcome_reason": None, "votes": [], "created_at": AT,
        "expires_at": "2026-01-01T04:00:00.000000Z", "escalate_at": None, "on_timeout": "deny",
        "at": AT, "admin_path": "/v1/pending/p_0123456789ab"}


def test_the_message_leaves_out_the_request_and_its_params() -> None:
    sent = orjson.dumps(message(Event.NEW, item(), at=AT, on_timeout="deny"))
    assert b"secret body" not in sent and b"repo" not in sent


def test_agent_chosen_text_cannot_mention_the_channel_or_forge_a_link() -> None:
    sent = message(Event.DENIED, item(action="mcp.<!channel>", state=State.DENIED,
                                      outcome_reason="see <http://evil|here> & more"),
                   at=AT, on_timeout="deny")
    shown = orjson.dumps([sent["text"], sent["blocks"]]).decode()
    assert "<!channel>" not in shown and "<http://evil" not in shown
    assert "mcp.&lt;!channel&gt;" in shown and "&amp; more" in shown
    assert sent["gatehouse"]["action"] == "mcp.<!channel>"  # type: ignore[index]


def test_a_halt_message_names_its_scope_and_the_reviews_that_wait() -> None:
    halt = Halt(id="h_1", scope="agent", target="bot-<!here>", reason="runaway *loop*",
                actor="rita", created_at=AT)
    sent = halt_message(halt, lifted=False, waiting=["p_1", "p_2"])
    assert sent["text"].startswith("Gatehouse: HALTED: agent `bot-&lt;!here&gt;`, by rita")
    assert "2 held call(s)" in sent["text"] and "approvals are refused" in sent["text"]
    assert "*loop*" not in sent["text"]  # the reason cannot format the message
    assert sent["gatehouse"] == {**halt.to_json(), "event": "halted",
                                 "waiting_pending_ids": ["p_1", "p_2"]}
    resumed = halt_message(replace(halt, lifted_at=AT, lifted_by="rex"), lifted=True,
                           waiting=["p_1"])
    assert resumed["text"].startswith("Gatehouse: Resumed: agent")
    assert "lifted by rex" in resumed["text"] and "may be reviewed again" in resumed["text"]
    assert resumed["gatehouse"]["event"] == "resumed"  # type: ignore[index]


@pytest.mark.parametrize(("event", "changes", "on_timeout", "words"), [
    (Event.ESCALATED, {"route": "managers", "escalation_level": 1,
                       "earlier_routes": ("ops",)}, "deny", "Escalated to `managers` (level 1)"),
    (Event.EXPIRING, {}, "allow", "APPROVED without a reviewer"),
    (Event.EXPIRING, {}, "deny", "then it is refused"),
    (Event.APPROVED, {"state": State.APPROVED,
                      "votes": (Vote("dave", "approve", "ok", AT, None),)}, "deny",
     "Approved by dave"),
    (Event.EXPIRED, {"state": State.EXPIRED, "outcome_reason": "no decision within 4:00:00"},
     "deny", "Expired: no decision within 4:00:00"),
    (Event.CONSUMED, {"state": State.CONSUMED}, "deny", "forwarded"),
])
def test_the_headline_says_what_happened(event: Event, changes: dict[str, object],
                                         on_timeout: str, words: str) -> None:
    sent = message(event, item(**changes), at=AT, on_timeout=on_timeout)
    assert words in str(sent["text"])
    assert sent["gatehouse"]["event"] == event.value  # type: ignore[index]


def test_webhook_urls_are_http_with_a_host_and_audited_without_their_secret() -> None:
    assert check_url("https://hooks.slack.com/services/T/B/X")
    for bad in ("ftp://example.com/x", "hooks.slack.com/x", "http:///x"):
        with pytest.raises(ValueError, match="not an http"):
            check_url(bad)
    assert url_host("https://user:pw@hooks.example:8443/services/T/B/X?k=v") == \
        "hooks.example:8443"


# --- delivery ------------------------------------------------------------------------------

def test_every_message_reaches_every_url(audit: AuditLog) -> None:
    one, two = Receiver(), Receiver()

    async def scenario() -> None:
        async with receiving(one, two):
            notifier = Notifier([one.url, two.url], audit)
            notifier.start()
            notify(notifier, Event.NEW)
            notify(notifier, Event.APPROVED, state=State.APPROVED)
            await until(lambda: len(one.received) == len(two.received) == 2)
            await notifier.stop()

    asyncio.run(scenario())
    for receiver in (one, two):
        assert sorted(r["gatehouse"]["event"] for r in receiver.received) == [  # type: ignore[index]
            "approved", "new"]
    assert failures(audit) == []


def test_a_server_error_is_retried_with_backoff_until_it_is_accepted(audit: AuditLog) -> None:
    flaky = Receiver(statuses=(500, 503))

    async def scenario() -> float:
        async with receiving(flaky):
            notifier = Notifier([flaky.url], audit, first_backoff=0.1)
            notifier.start()
            started = time.monotonic()
            notify(notifier)
            await until(lambda: len(flaky.received) == 3)
            took = time.monotonic() - started
            await notifier.stop()
            return took

    took = asyncio.run(scenario())
    assert took >= 0.1 + 0.2  # backed off 0.1 s, then 0.2 s
    assert flaky.received[0] == flaky.received[1] == flaky.received[2]
    assert failures(audit) == []


def test_a_refusal_other_than_429_is_not_retried_and_is_audited(audit: AuditLog) -> None:
    refusing = Receiver(statuses=(400, 400))

    async def scenario() -> None:
        async with receiving(refusing):
            notifier = Notifier([refusing.url], audit, first_backoff=0.01)
            notifier.start()
            notify(notifier)
            await until(lambda: failures(audit))
            await notifier.stop()

    asyncio.run(scenario())
    assert len(refusing.received) == 1
    [failed] = failures(audit)
    assert failed["error"] == "HTTP 400" and failed["attempts"] == 1


def test_a_receiver_that_is_down_ends_in_one_record_naming_its_host_not_its_secret(
        audit: AuditLog) -> None:
    port = free_port()  # nothing listens there

    async def scenario() -> None:
        notifier = Notifier([f"http://127.0.0.1:{port}{SECRET_PATH}"], audit, attempts=3,
                            first_backoff=0.01)
        notifier.start()
        notify(notifier)
        await until(lambda: failures(audit))
        await notifier.stop()

    asyncio.run(scenario())
    [failed] = failures(audit)
    assert failed["url_host"] == f"127.0.0.1:{port}" and failed["attempts"] == 3
    assert failed["notification"] == "new" and failed["pending_id"] == "p_0123456789ab"
    assert failed["agent"] == "ops-bot" and "connect" in str(failed["error"]).lower()
    assert "very-secret" not in orjson.dumps(failed).decode()


def test_notify_returns_at_once_while_the_receiver_hangs(audit: AuditLog) -> None:
    hanging = Receiver(delay=1)

    async def scenario() -> float:
        async with receiving(hanging):
            notifier = Notifier([hanging.url], audit, attempts=1, timeout=0.3)
            notifier.start()
            started = time.perf_counter()
            for n in range(30):
                notify(notifier, id=f"p_{n:012x}")
            took = time.perf_counter() - started
            await until(lambda: len(failures(audit)) == 30, seconds=20)
            await notifier.stop()
            return took

    assert asyncio.run(scenario()) < 0.5  # waiting would take 0.3 s per message: 9 s
    assert {f["error"] for f in failures(audit)} == {"no answer within 0.3 s"}


def test_a_receiver_that_hangs_delays_only_its_own_messages(audit: AuditLog) -> None:
    hanging, quick = Receiver(delay=1), Receiver()

    async def scenario() -> float:
        async with receiving(hanging, quick):
            notifier = Notifier([hanging.url, quick.url], audit, attempts=1, timeout=0.5)
            notifier.start()
            started = time.monotonic()
            for n in range(20):
                notify(notifier, id=f"p_{n:012x}")
            await until(lambda: len(quick.received) == 20)
            took = time.monotonic() - started
            await notifier.stop(grace=0)
            return took

    assert asyncio.run(scenario()) < 0.9  # behind the hanging ones: 20 x 0.5 s / 4 workers


def test_a_full_queue_drops_the_message_and_records_it(audit: AuditLog) -> None:
    async def scenario() -> None:
        notifier = Notifier(["http://127.0.0.1:9/hook"], audit, queue_size=1)  # not started
        notify(notifier, id="p_000000000001")
        notify(notifier, id="p_000000000002")
        await until(lambda: failures(audit))

    asyncio.run(scenario())
    [failed] = failures(audit)
    assert failed["pending_id"] == "p_000000000002" and "queue is full" in str(failed["error"])


def test_notifications_never_go_through_a_proxy(audit: AuditLog,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's own proxy variables (here: a proxy that is down) are not used."""
    receiver = Receiver()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "")

    async def scenario() -> None:
        async with receiving(receiver):
            notifier = Notifier([receiver.url], audit, attempts=1)
            notifier.start()
            notify(notifier)
            await until(lambda: receiver.received or failures(audit))
            await notifier.stop()

    asyncio.run(scenario())
    assert len(receiver.received) == 1 and failures(audit) == []


def test_stopping_delivers_what_is_queued_within_the_grace_period(audit: AuditLog) -> None:
    receiver, hanging = Receiver(), Receiver(delay=1.5)

    async def scenario() -> float:
        async with receiving(receiver, hanging):
            quick = Notifier([receiver.url], audit)
            quick.start()
            notify(quick)
            await quick.stop()
            stuck = Notifier([hanging.url], audit)
            stuck.start()
            notify(stuck)
            started = time.monotonic()
            await stuck.stop(grace=0.2)
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 1
    assert len(receiver.received) == 1


def test_without_urls_nothing_is_queued_or_started(audit: AuditLog) -> None:
    async def scenario() -> None:
        notifier = Notifier([], audit, queue_size=1)
        assert not notifier.enabled
        notifier.start()
        for _ in range(3):
            notify(notifier)
        await notifier.stop()

    asyncio.run(scenario())
    assert failures(audit) == []


def test_a_playbook_message_names_who_did_what_under_which_rule_and_nothing_more() -> None:
    sent = allowed_message(agent="ops-bot", tenant="acme", action="deploy.restart",
                           verdict="allow", rule_ids=["restart-playbook"],
                           reason="Restarts are pre-approved", request_id="r_1",
                           snapshot_id="1:aaaaaaaaaaaa", at=AT)
    assert "Allowed by playbook rule `restart-playbook`" in str(sent["text"])
    assert sent["gatehouse"] == {
        "event": "allowed_notify", "pending_id": None, "agent": "ops-bot", "tenant": "acme",
        "action": "deploy.restart", "verdict": "allow", "rule_ids": ["restart-playbook"],
        "reason": "Restarts are pre-approved", "request_id": "r_1",
        "snapshot_id": "1:aaaaaaaaaaaa", "at": AT}


def test_reviewer_text_cannot_fake_a_headline_in_slack() -> None:
    from gateway.approvals.notify import _slack
    shown = _slack("fine\n*Approved by alice*\n<!channel>")
    assert "\n" not in shown and "<!channel>" not in shown
    assert shown.count("\u200b*") == 2  # the bold markers are neutralised
