"""Containment: a halt ends the open event streams it covers, freezes the reviews in its scope
and tells the reviewers so; a gateway that cannot read its halts starts halted."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Running, serving, start_gateway
from tests.e2e.upstream import Upstream
from tests.e2e.webhooks import WebhookReceiver, webhook_receiver

POLICY = """\
version: 1
policy: containment
revision: "1"
egress:
  allow: [api.openai.com, api.sendgrid.com, docs.acme.example]
actions:
  - {type: llm.stream, match: {host: api.openai.com}}
  - {type: email.send, match: {method: POST, host: api.sendgrid.com}}
  - {type: docs.read, match: {host: docs.acme.example}}
rules:
  - {id: reads, when: {action: [llm.stream, docs.read]}, decision: allow}
  - {id: email, when: {action: email.send}, decision: require_approval}
approvals: {hold_seconds: 0}
responses:
  tier: patterns
  detect: [US_SSN]
  quarantine: [US_SSN]
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
       receiver: WebhookReceiver) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "containment", POLICY,
                 extra=["--webhook", receiver.url]) as running:
        yield running


def admin(gw: Running, method: str, path: str, role: str, **kwargs: object) -> httpx.Response:
    return gw.gh.admin_call(method, path, gw.people[role], **kwargs)


def halt(gw: Running, scope: str, target: str | None) -> dict[str, object]:
    response = admin(gw, "POST", "/v1/halts", "responder",
                     json={"scope": scope, "target": target, "reason": "drill"})
    assert response.status_code == 201, response.text
    return response.json()


class Stream:
    """An agent reading an event stream in the background, line by line."""

    def __init__(self, gw: Running, agent: str) -> None:
        self.lines: list[str] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(gw, agent), daemon=True)
        self._thread.start()

    def _read(self, gw: Running, agent: str) -> None:
        with gw.client(agent) as c, c.stream(
                "GET", "https://api.openai.com/ticker?count=40&interval=0.1") as response:
            self.headers = response.headers
            for line in response.iter_lines():
                self.lines.append(line)
        self.done.set()

    def ticks(self) -> int:
        return sum(1 for line in self.lines if line.startswith("data: tick"))

    def wait_ticks(self, n: int) -> None:
        deadline = time.monotonic() + 15
        while self.ticks() < n:
            assert time.monotonic() < deadline, f"only {self.ticks()} events: {self.lines}"
            time.sleep(0.02)


def test_a_halt_ends_the_open_event_stream_of_that_agent_and_no_other(gw: Running) -> None:
    halted, other = Stream(gw, "support-bot"), Stream(gw, "ops-bot")
    halted.wait_ticks(3)
    other.wait_ticks(3)
    created = halt(gw, "agent", "support-bot")
    try:
        assert halted.done.wait(15) and other.done.wait(15)
        cut = halted.lines.index("event: gatehouse")
        assert '"type":"halted"' in halted.lines[cut + 1]
        assert created["id"] in halted.lines[cut + 1]
        assert not any(line.startswith("data: tick") for line in halted.lines[cut:])
        assert halted.ticks() < 40
        assert other.ticks() == 40 and "event: gatehouse" not in other.lines
        gw.wait_for_audit("call.stream_halted", halt_id=created["id"], agent="support-bot")
    finally:
        admin(gw, "DELETE", f"/v1/halts/{created['id']}", "responder")


def _halt_messages(receiver: WebhookReceiver, halt_id: str, event: str) -> list[dict]:
    return [m["gatehouse"] for m in receiver.messages
            if m["gatehouse"].get("id") == halt_id and m["gatehouse"]["event"] == event]


def _wait_message(receiver: WebhookReceiver, halt_id: str, event: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while not (found := _halt_messages(receiver, halt_id, event)):
        assert time.monotonic() < deadline, f"no `{event}` message for {halt_id}"
        time.sleep(0.05)
    return found[0]


def test_a_halt_freezes_the_reviews_in_its_scope_and_tells_the_reviewers(
        gw: Running, receiver: WebhookReceiver) -> None:
    with gw.client("support-bot") as bot:
        held = bot.post("https://api.sendgrid.com/v3/mail/send", json={"to": "a@example.com"})
    assert held.status_code == 503, held.text
    pending_id = held.json()["error"]["pending_id"]
    created = halt(gw, "action", "email.*")

    message = _wait_message(receiver, created["id"], "halted")
    assert message["waiting_pending_ids"] == [pending_id]
    assert message["scope"] == "action" and message["target"] == "email.*"
    text = next(m["text"] for m in receiver.messages if m["gatehouse"] is message)
    assert "HALTED" in text and "1 held call(s)" in text

    vote = admin(gw, "POST", f"/v1/pending/{pending_id}/approve", "reviewer",
                 json={"reason": "looks fine"})
    assert vote.status_code == 409 and vote.json()["error"]["type"] == "halted"

    assert admin(gw, "DELETE", f"/v1/halts/{created['id']}", "responder").status_code == 200
    resumed = _wait_message(receiver, created["id"], "resumed")
    assert resumed["waiting_pending_ids"] == [pending_id]
    assert resumed["lifted_by"] == "responder-person"
    vote = admin(gw, "POST", f"/v1/pending/{pending_id}/approve", "reviewer",
                 json={"reason": "looks fine"})
    assert vote.status_code == 200, vote.text


def test_a_gateway_that_cannot_read_its_halts_starts_halted_until_repaired(
        tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> None:
    tmp = tmp_path_factory.mktemp("unreadable")
    (tmp / "policy.yaml").write_text(POLICY)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream)
    state = running.gh.state / "state.db"
    try:
        running.gh.stop()
        with sqlite3.connect(state) as db:  # a damaged store: the halts table lost its columns
            db.executescript("DROP TABLE halts; CREATE TABLE halts (id TEXT PRIMARY KEY);")
        running.gh.start()

        with running.client("support-bot") as bot:
            refused = bot.get("http://docs.acme.example/a")  # plain: a tunnel is refused too
        assert refused.status_code == 403
        assert refused.json()["error"]["halt_id"] == "h_unreadable"
        assert "could not be read" in refused.json()["error"]["reason"]
        listed = admin(running, "GET", "/v1/halts", "responder").json()["items"]
        assert [h["id"] for h in listed] == ["h_unreadable"]
        running.wait_for_audit("halt.set", id="h_unreadable", actor="gatehouse")

        still_broken = admin(running, "DELETE", "/v1/halts/h_unreadable", "responder")
        assert still_broken.status_code == 409
        assert "still cannot be read" in still_broken.json()["error"]["message"]

        with sqlite3.connect(state) as db:  # the responder restores the table
            db.executescript(
                "DROP TABLE halts; CREATE TABLE halts (id TEXT PRIMARY KEY, scope TEXT NOT NULL,"
                " target TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL, "
                "created_at TEXT NOT NULL, lifted_at TEXT, lifted_by TEXT, "
                "mode TEXT NOT NULL DEFAULT 'halt');")
        lifted = admin(running, "DELETE", "/v1/halts/h_unreadable", "responder")
        assert lifted.status_code == 200 and lifted.json()["lifted_by"] == "responder-person"
        with running.client("support-bot") as bot:
            assert bot.get("http://docs.acme.example/a").status_code == 200
    finally:
        running.gh.stop()


def test_resuming_in_shadow_withholds_writes_until_a_responder_lifts_the_shadow(
        gw: Running, upstream: Upstream) -> None:
    created = halt(gw, "agent", "support-bot")
    resumed = admin(gw, "DELETE", f"/v1/halts/{created['id']}?as=shadow", "responder")
    assert resumed.status_code == 200, resumed.text
    shadow = resumed.json()["shadow"]
    assert (resumed.json()["active"], shadow["mode"], shadow["target"]) == (
        False, "shadow", "support-bot")

    with gw.client("support-bot") as bot:
        read = bot.get("https://docs.acme.example/shadow-read")
        write = bot.post("https://docs.acme.example/shadow-write", json={"x": 1})
    assert read.status_code == 200
    assert write.status_code == 403 and write.json()["error"]["type"] == "shadow"
    assert not upstream.requests_to("/shadow-write")  # recorded, not forwarded
    record = gw.wait_for_audit("call.decided",
                               request_id=write.headers["X-Gatehouse-Request-Id"])
    assert (record["decision"], record["verdict"], record["halt_id"]) == (
        "shadow", "allow", shadow["id"])  # what it would have done

    assert admin(gw, "DELETE", f"/v1/halts/{shadow['id']}", "reviewer").status_code == 403
    assert admin(gw, "DELETE", f"/v1/halts/{shadow['id']}", "responder").status_code == 200
    with gw.client("support-bot") as bot:
        assert bot.post("https://docs.acme.example/shadow-write", json={"x": 2}
                        ).status_code == 200


def test_the_cli_resumes_in_shadow(gw: Running) -> None:
    created = halt(gw, "agent", "ops-bot")
    env = {"GATEHOUSE_TOKEN": gw.people["responder"]}
    out = json.loads(gw.gh.cli("resume", str(created["id"]), "--as", "shadow", env=env).stdout)
    assert out["shadow"]["mode"] == "shadow"
    again = gw.gh.cli("resume", str(out["shadow"]["id"]), "--as", "shadow", env=env,
                      check=False)
    assert again.returncode != 0 and "a shadow already" in again.stderr
    gw.gh.cli("resume", str(out["shadow"]["id"]), env=env)
