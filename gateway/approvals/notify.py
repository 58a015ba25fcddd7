"""Webhook notifications about held calls: Slack-compatible JSON, sent in the background.

Reviewers hear of a new item, an escalation, an item drawn for a second review, an item about
to expire, and every outcome (approved, denied, expired, consumed); of halts set and lifted,
with the held calls whose reviews must wait; and of calls a playbook rule
(`notify: true`) let through without review, which are already on their way when the message is
queued. Each message is Slack's incoming-webhook shape (`text`
and `blocks`) with a machine-readable `gatehouse` object beside them, POSTed to every URL the
operator configured.

Sending never holds up a decision: `notify` only puts the message on each URL's bounded queue
(when one is full the message is dropped for that URL, and the audit trail says so) and that
URL's background workers deliver it: a few attempts with exponential backoff, each with a
timeout, so one message takes a bounded time. Each URL has its own queue and workers, so a
receiver that is down or hangs delays only its own messages. A delivery that still fails is
recorded as `notify.failed` with the URL's host and the error; the rest of the URL is left out,
since webhook URLs carry their secret in the path. Messages may arrive out of order (several
workers, retries); each carries its `at`.

Webhook URLs are the operator's (`gatehouse run --webhook URL`), not an agent's, and may name
internal addresses (a chat bridge on the LAN): they are not agent traffic, so the agents' egress
policy does not apply to them. Nor do they go through any proxy, least of all the gateway's own:
the client ignores proxy variables (`trust_env=False`), so a notification can never loop back
into the proxy and be held, decided or audited as if an agent had made the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from gateway.approvals.model import PendingItem
from gateway.audit import AuditError, AuditLog
from gateway.halts import Halt

log = logging.getLogger("gatehouse.notify")

QUEUE_SIZE = 1000  # messages waiting per URL; beyond this they are dropped (and audited)
ATTEMPTS = 4  # per URL and message: at most 4 x TIMEOUT + 0.5 + 1 + 2 s in all
FIRST_BACKOFF = 0.5  # seconds before the second attempt, doubled before each further one
TIMEOUT = 5.0  # seconds for one attempt, connecting included
WORKERS = 4  # deliveries in flight per URL
SHOWN_TEXT = 300  # characters of free text (reasons) shown in the Slack text
JSON = {"Content-Type": "application/json"}


class Event(StrEnum):
    NEW = "new"
    ESCALATED = "escalated"
    EXPIRING = "expiring"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CONSUMED = "consumed"
    SECOND_REVIEW = "second_review"
    ALLOWED = "allowed_notify"  # a playbook rule let a call through and asked to be told


AT_EXPIRY = {"deny": "it is refused", "escalate": "it escalates",
             "allow": "it is APPROVED without a reviewer (on_timeout: allow)"}


def check_url(url: str) -> str:
    """An http(s) URL with a host, or ValueError saying what to write instead."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook `{url}` is not an http(s) URL; write it like "
                         "https://hooks.slack.com/services/T000/B000/XXXX")
    return url


def url_host(url: str) -> str:
    """What the audit trail may say about a webhook URL: host and port, no credentials, no
    path (where Slack and most others keep the secret)."""
    return urlsplit(url).netloc.rpartition("@")[2]


def admin_path(item_id: str) -> str:
    return f"/v1/pending/{item_id}"


def message(event: Event, item: PendingItem, *, at: str, on_timeout: str) -> dict[str, object]:
    """What is POSTed for `event` on `item`: Slack's `text` and `blocks`, and `gatehouse`, the
    same facts for machines. `on_timeout` says what expiry will do to the item."""
    facts: dict[str, object] = {
        "event": event.value, "pending_id": item.id, "state": item.state.value,
        "agent": item.agent, "tenant": item.tenant, "action": item.action, "tier": item.tier,
        "route": item.route, "escalation_level": item.escalation_level,
        "earlier_routes": list(item.earlier_routes), "assigned_to": item.assigned_to,
        "approvals": item.approvals, "approvals_needed": item.approvals_needed,
        "second_review": item.second_review, "reason": item.reason,
        "outcome_reason": item.outcome_reason,
        "votes": [{"reviewer": v.reviewer, "verdict": v.verdict, "at": v.at}
                  for v in item.votes],
        "created_at": item.created_at, "expires_at": item.expires_at,
        "escalate_at": item.escalate_at, "on_timeout": on_timeout, "at": at,
        "admin_path": admin_path(item.id),
    }
    headline = _headline(event, item, on_timeout)
    group = f"group `{_slack(item.route)}`" if item.route else "any reviewer"
    if item.assigned_to:
        group += f", assigned to `{_slack(item.assigned_to)}`"
    summary = (f"`{_slack(item.agent)}` wants `{_slack(item.action)}` (tier {item.tier}, "
               f"{group}): {_slack(item.reason)}")
    return _slack_message(headline, summary,
                          f"`{item.id}` · {admin_path(item.id)} · expires {item.expires_at}",
                          facts)


def allowed_message(*, agent: str, tenant: str | None, action: str, verdict: str,
                    rule_ids: Sequence[str], reason: str, request_id: str, snapshot_id: str,
                    at: str) -> dict[str, object]:
    """What is POSTed when a `notify: true` rule lets a call through: who did what under which
    rule, and the request id that finds its audit record. Never the body or the params: the
    call did not need a reviewer, and the chat channel is not the evidence store."""
    rules = ", ".join(f"`{_slack(rule)}`" for rule in rule_ids)
    headline = f"Allowed by playbook rule {rules}"
    summary = f"`{_slack(agent)}` did `{_slack(action)}`: {_slack(reason)}"
    context = f"request `{_slack(request_id)}` · /v1/audit · {at}"
    return _slack_message(headline, summary, context, {
        "event": Event.ALLOWED.value, "pending_id": None, "agent": agent, "tenant": tenant,
        "action": action, "verdict": verdict, "rule_ids": list(rule_ids), "reason": reason,
        "request_id": request_id, "snapshot_id": snapshot_id, "at": at})


def halt_message(halt: Halt, *, lifted: bool, waiting: Sequence[str]) -> dict[str, object]:
    """What is POSTed when a halt is set or lifted: its scope, and the held calls in it, whose
    reviews wait (approving them is refused) until it is lifted."""
    scope = "everything" if halt.scope == "all" else f"{halt.scope} `{_slack(halt.target)}`"
    if lifted:
        headline = f"Resumed: {scope} (halt lifted by {_slack(halt.lifted_by)})"
        waits = f"{len(waiting)} held call(s) in its scope may be reviewed again"
    elif halt.mode == "shadow":
        headline = f"SHADOW: {scope}, by {_slack(halt.actor)}: writes are withheld and recorded"
        waits = (f"{len(waiting)} held call(s) in its scope: approving a write is refused "
                 "until a responder lifts the shadow")
    else:
        headline = f"HALTED: {scope}, by {_slack(halt.actor)}"
        waits = (f"{len(waiting)} held call(s) in its scope: in-flight reviews must wait, "
                 "approvals are refused until it is lifted")
    summary = f"{_slack(halt.reason)}. {waits}."
    at = halt.lifted_at if lifted else halt.created_at
    context = f"`{halt.id}` · /v1/halts/{halt.id} · {at}"
    return _slack_message(headline, summary, context, {
        "event": "resumed" if lifted else "halted", **halt.to_json(),
        "waiting_pending_ids": list(waiting)})


def _slack_message(headline: str, summary: str, context: str,
                   facts: dict[str, object]) -> dict[str, object]:
    """Slack's incoming-webhook shape (`text`, `blocks`), with the facts for machines beside."""
    return {
        "text": f"Gatehouse: {headline}. {summary}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\n{summary}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
        "gatehouse": facts,
    }


def _headline(event: Event, item: PendingItem, on_timeout: str) -> str:
    outcome = _slack(item.outcome_reason or "")
    match event:
        case Event.NEW:
            return "Approval needed"
        case Event.ESCALATED:
            return f"Escalated to `{_slack(item.route)}` (level {item.escalation_level})"
        case Event.EXPIRING:
            return (f"Expiring at {item.expires_at}; then "
                    f"{AT_EXPIRY.get(on_timeout, on_timeout)}")
        case Event.APPROVED:
            return "Approved by " + ", ".join(_slack(v.reviewer) for v in item.votes
                                              if v.verdict == "approve")
        case Event.DENIED:
            return f"Denied: {outcome}"
        case Event.EXPIRED:
            return f"Expired: {outcome}"
        case Event.CONSUMED:
            return "The approved call was forwarded"
        case Event.SECOND_REVIEW:
            return ("Drawn for a second review: one more approval from another reviewer "
                    f"({item.approvals} of {item.approvals_needed})")
        case Event.ALLOWED:  # has a message of its own (`allowed_message`)
            raise ValueError("an allowed call is not a held item")


def _slack(text: str | None) -> str:
    """Text for Slack's mrkdwn, cut short and on one line: `&`, `<` and `>` escaped and the
    formatting characters neutralised, so an agent's action name or a reviewer's reason cannot
    mention `<!channel>`, forge a link, or fake a headline of its own."""
    text = " ".join((text or "").split())
    if len(text) > SHOWN_TEXT:
        text = text[:SHOWN_TEXT] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"\u200b{c}" if c in "*~" else c for c in text)


Queue = asyncio.Queue[tuple[bytes, dict[str, object]]]  # the body as sent, and as JSON


class Notifier:
    """Queues messages per URL and delivers them from background workers; does nothing
    without URLs."""

    def __init__(self, urls: Sequence[str], audit: AuditLog, *, queue_size: int = QUEUE_SIZE,
                 attempts: int = ATTEMPTS, first_backoff: float = FIRST_BACKOFF,
                 timeout: float = TIMEOUT) -> None:
        self.urls = tuple(check_url(url) for url in urls)
        self._audit = audit
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._timeout = timeout
        self._queues: dict[str, Queue] = {url: asyncio.Queue(queue_size) for url in self.urls}
        self._tasks: set[asyncio.Task[None]] = set()  # workers, and audits of dropped messages
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    def notify(self, event: Event, item: PendingItem, *, at: str, on_timeout: str) -> None:
        """Queue one message about `item` for every URL; returns at once, whatever the
        receivers do."""
        if self.urls:
            self.send(message(event, item, at=at, on_timeout=on_timeout))

    def send(self, payload: dict[str, object]) -> None:
        """Queue `payload` (a `message` or an `allowed_message`) for every URL."""
        if not self.urls:
            return
        body = orjson.dumps(payload)
        for url, queue in self._queues.items():
            try:
                queue.put_nowait((body, payload))
            except asyncio.QueueFull:
                self._spawn(self._failed(url, payload, "the notification queue is full; "
                                                      "message dropped", attempts=0))

    def start(self) -> None:
        """Start the workers, on the running event loop."""
        if self.urls and self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout), trust_env=False)
            for url, queue in self._queues.items():
                for _ in range(WORKERS):
                    self._spawn(self._work(url, queue))
            log.info("webhook notifications to %s",
                     ", ".join(url_host(url) for url in self.urls))

    async def stop(self, grace: float = 2.0) -> None:
        """Give what is queued or in flight `grace` seconds, then cancel the rest."""
        if self._session is None:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues.values())),
                                   grace)
        except TimeoutError:
            log.warning("stopping with %d notification(s) not delivered",
                        sum(q.qsize() for q in self._queues.values()))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()
        self._session = None

    async def _work(self, url: str, queue: Queue) -> None:
        while True:
            body, payload = await queue.get()
            try:
                error, attempts = await self._post(url, body)
                if error is not None:
                    await self._failed(url, payload, error, attempts=attempts)
            except Exception:  # a worker outlives any one message
                log.exception("delivering a notification to %s failed", url_host(url))
            finally:
                queue.task_done()

    async def _post(self, url: str, body: bytes) -> tuple[str | None, int]:
        """(None, attempts) once the receiver answers 2xx, else (the last error, attempts).
        A 4xx other than 429 is not retried: the receiver refuses this message as it is."""
        attempt = 0
        while True:
            attempt += 1
            error, retry = await self._attempt(url, body)
            if error is None or not retry or attempt >= self._attempts:
                return error, attempt
            await asyncio.sleep(self._first_backoff * 2 ** (attempt - 1))

    async def _attempt(self, url: str, body: bytes) -> tuple[str | None, bool]:
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=JSON,
                                          allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None, False
                return f"HTTP {response.status}", response.status >= 500 or \
                    response.status == 429
        except TimeoutError:
            return f"no answer within {self._timeout:g} s", True
        except aiohttp.ClientError as e:  # some name the URL: keep its secret out of the audit
            return f"{type(e).__name__}: {e}".replace(url, url_host(url)), True

    async def _failed(self, url: str, payload: dict[str, object], error: str, *,
                      attempts: int) -> None:
        facts = payload["gatehouse"]
        assert isinstance(facts, dict)
        about = facts["pending_id"] or facts.get("request_id")
        log.warning("notification `%s` of %s to %s failed after %d attempt(s): %s",
                    facts["event"], about, url_host(url), attempts, error)
        try:
            await self._audit.append("notify.failed", {
                "url_host": url_host(url), "error": error, "attempts": attempts,
                "notification": facts["event"], "pending_id": facts["pending_id"],
                "request_id": facts.get("request_id"), "agent": facts["agent"],
                "action": facts["action"]})
        except AuditError:
            log.exception("the failed notification could not be recorded either")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task referenced until it ends (the event loop keeps only weak
        references), whose unexpected exception is logged rather than lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("notification task failed", exc_info=error)
