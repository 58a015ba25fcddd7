"""Responses scanned for personal data through the real gateway, with real Presidio and the NER
model: passed, redacted in place, or quarantined for a reviewer, and delivered once released.

The upstream answers `/canned/{name}` with fixed bodies (tests/e2e/canned.py); the gateway pins
the test hostnames to it.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from gateway.audit import AuditLog
from tests.e2e.canned import EMAIL, PNG, SSN, STATIC
from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: response-scanning
revision: "1"
egress:
  allow: [tools.acme.internal, api.github.com, api.openai.com]
actions:
  - {type: crm.escalate, match: {method: POST, host: tools.acme.internal, path: /escalations}}
  - {type: crm.read, match: {method: GET, host: tools.acme.internal}}
  - {type: crm.write, match: {method: POST, host: tools.acme.internal}}
  - {type: files.get, match: {host: api.github.com}}
  - {type: llm.call, match: {host: api.openai.com}}
rules:
  - {id: allowed, when: {action: ["crm.*", files.get, llm.call]}, decision: allow}
  - {id: escalations, when: {action: crm.escalate}, decision: require_approval}
  - id: no-ssn-out
    when: {request_contains: [US_SSN, CREDIT_CARD]}
    decision: deny
    reason: personal data may not leave in a request
approvals: {hold_seconds: 0}
responses:
  tier: ner
  detect: [EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, CREDIT_CARD, PERSON]
  redact: [EMAIL_ADDRESS, PHONE_NUMBER, PERSON]
  quarantine: [US_SSN, CREDIT_CARD]
  skip_actions: [llm.call]
  max_body_bytes: 1048576
  overrides:
    - {actions: files.*, binary: quarantine}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("scanning")
    (tmp / "policy.yaml").write_text(POLICY)
    running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("support-bot",))
    yield running
    running.gh.stop()


def _client(gw: Running) -> httpx.Client:
    trust = ssl.create_default_context(cafile=gw.gh.ca_bundle)
    return httpx.Client(proxy=gw.proxy("support-bot"), verify=trust, timeout=60)


def fetch(gw: Running, name: str, host: str = "tools.acme.internal",
          probe: str | None = None) -> httpx.Response:
    with _client(gw) as c:
        return c.get(f"https://{host}/canned/{name}?probe={probe or uuid.uuid4().hex}")


def records(gw: Running, event: str, **match: object) -> list[dict[str, object]]:
    found = AuditLog(gw.gh.state / "audit.db").query(event=event)
    return [r for r in found if all(r.get(k) == v for k, v in match.items())]


def admin(gw: Running, method: str, path: str, role: str = "reviewer",
          **kwargs: object) -> httpx.Response:
    return gw.gh.admin_call(method, path, gw.people[role], **kwargs)


@pytest.mark.parametrize("name", ["contact", "contact-gzip", "contact-br"])
def test_personal_data_is_redacted_in_place_and_the_json_stays_valid(gw: Running,
                                                                      name: str) -> None:
    response = fetch(gw, name)
    assert response.status_code == 200
    assert response.headers["X-Gatehouse-Response"] == "redacted"
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json() == {"contact": {
        "id": "cus_8812", "email": "<EMAIL_ADDRESS>", "plan": "pro",
        "note": "Spoke with <PERSON> about the invoice."}}
    [record] = records(gw, "call.response",
                       request_id=response.headers["X-Gatehouse-Request-Id"])
    assert record["outcome"] == "redacted"
    assert {(f["field"], f["reason"], f["action"]) for f in record["findings"]} == {
        ("response.contact.email", "EMAIL_ADDRESS", "redacted"),
        ("response.contact.note", "PERSON", "redacted")}


def test_a_text_body_is_redacted_as_text(gw: Running) -> None:
    response = fetch(gw, "text")
    assert (response.status_code, response.text) == (200, "Write to <EMAIL_ADDRESS> today.")


def test_a_clean_body_passes_untouched_and_unrecorded(gw: Running) -> None:
    response = fetch(gw, "clean")
    assert response.content == STATIC["clean"][2]
    assert "X-Gatehouse-Response" not in response.headers
    assert records(gw, "call.response",
                   request_id=response.headers["X-Gatehouse-Request-Id"]) == []


def test_skipped_actions_are_not_scanned(gw: Running) -> None:
    response = fetch(gw, "customer", host="api.openai.com")
    assert response.status_code == 200
    assert response.json()["customer"]["ssn"] == SSN


def _quarantined(response: httpx.Response) -> str:
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "quarantined"
    assert response.headers["X-Gatehouse-Decision"] == "quarantined"
    return str(error["quarantine_id"])


def test_a_quarantined_response_never_reaches_the_agent(gw: Running) -> None:
    response = fetch(gw, "customer")
    qid = _quarantined(response)
    assert SSN not in response.text and EMAIL not in response.text
    assert response.json()["error"]["reason"] == "it contains US_SSN"
    [record] = records(gw, "call.response", quarantine_id=qid)
    assert record["outcome"] == "quarantine"
    assert {(f["field"], f["reason"], f["action"]) for f in record["findings"]} == {
        ("response.customer.email", "EMAIL_ADDRESS", "redacted"),
        ("response.customer.ssn", "US_SSN", "quarantined")}


def test_reviewers_see_the_redacted_view_and_only_auditors_the_original(gw: Running) -> None:
    qid = _quarantined(fetch(gw, "customer"))
    listed = admin(gw, "GET", "/v1/quarantine", params={"state": "held"}).json()["items"]
    assert qid in [item["id"] for item in listed]

    seen = admin(gw, "GET", f"/v1/quarantine/{qid}").json()
    assert orjson.loads(seen["redacted"]) == {"customer": {
        "id": "cus_8812", "email": "<EMAIL_ADDRESS>", "ssn": "<US_SSN>", "plan": "pro"}}
    assert "original" not in seen
    refused = admin(gw, "GET", f"/v1/quarantine/{qid}", params={"original": "true"})
    assert refused.status_code == 403
    assert records(gw, "quarantine.original_read", quarantine_id=qid) == []

    read = admin(gw, "GET", f"/v1/quarantine/{qid}", role="auditor",
                 params={"original": "true"}).json()
    assert orjson.loads(base64.b64decode(read["original"]["body_base64"])) == {
        "customer": {"id": "cus_8812", "email": EMAIL, "ssn": SSN, "plan": "pro"}}
    [audited] = records(gw, "quarantine.original_read", quarantine_id=qid)
    assert (audited["by"], audited["role"]) == ("auditor-person", "auditor")


def test_release_as_redacted_is_delivered_to_the_retry_exactly_once(
        gw: Running, upstream: Upstream) -> None:
    probe = uuid.uuid4().hex
    qid = _quarantined(fetch(gw, "customer", probe=probe))
    assert _quarantined(fetch(gw, "customer", probe=probe)) == qid  # not sent upstream again
    hits = [r for r in upstream.requests_to("/canned/customer") if r["query"] == f"probe={probe}"]
    assert len(hits) == 1

    released = admin(gw, "POST", f"/v1/quarantine/{qid}/release",
                     json={"as": "redacted", "reason": "the agent needs the plan, not the SSN"})
    assert released.status_code == 200
    assert released.json()["state"] == "released"

    delivered = fetch(gw, "customer", probe=probe)
    assert delivered.status_code == 200
    assert delivered.headers["X-Gatehouse-Decision"] == "quarantine_released"
    assert delivered.json()["customer"] == {"id": "cus_8812", "email": "<EMAIL_ADDRESS>",
                                            "ssn": "<US_SSN>", "plan": "pro"}
    assert len(records(gw, "quarantine.delivered", quarantine_id=qid)) == 1

    again = fetch(gw, "customer", probe=probe)  # spent: a new call, scanned anew
    assert _quarantined(again) != qid
    hits = [r for r in upstream.requests_to("/canned/customer") if r["query"] == f"probe={probe}"]
    assert len(hits) == 2


def test_only_an_admin_releases_the_original(gw: Running) -> None:
    probe = uuid.uuid4().hex
    qid = _quarantined(fetch(gw, "customer", probe=probe))
    body = {"as": "original", "reason": "verified customer request"}
    assert admin(gw, "POST", f"/v1/quarantine/{qid}/release", json=body).status_code == 403
    assert admin(gw, "POST", f"/v1/quarantine/{qid}/release", role="admin",
                 json=body).status_code == 200
    assert admin(gw, "POST", f"/v1/quarantine/{qid}/release", role="admin",
                 json=body).status_code == 409
    delivered = fetch(gw, "customer", probe=probe)
    assert delivered.json()["customer"]["ssn"] == SSN


def test_a_discarded_response_is_never_delivered(gw: Running) -> None:
    probe = uuid.uuid4().hex
    qid = _quarantined(fetch(gw, "customer", probe=probe))
    assert admin(gw, "POST", f"/v1/quarantine/{qid}/discard", role="responder",
                 json={"reason": "not needed"}).json()["state"] == "discarded"
    assert admin(gw, "POST", f"/v1/quarantine/{qid}/release",
                 json={"as": "redacted", "reason": "x"}).status_code == 409
    assert _quarantined(fetch(gw, "customer", probe=probe)) != qid


@pytest.mark.parametrize("name,note", [
    ("bomb", "decoded `gzip` body exceeds the 1048576-byte limit"),
    ("unknown-encoding", "unknown content encoding `compress`"),
])
def test_a_body_that_cannot_be_scanned_is_quarantined(gw: Running, name: str,
                                                      note: str) -> None:
    response = fetch(gw, name)
    qid = _quarantined(response)
    assert response.json()["error"]["reason"] == f"it could not be scanned: {note}"
    item = admin(gw, "GET", f"/v1/quarantine/{qid}").json()
    assert (item["outcome"], item["note"], item["redacted"]) == ("unscannable", note, None)
    refused = admin(gw, "POST", f"/v1/quarantine/{qid}/release",
                    json={"as": "redacted", "reason": "x"})
    assert refused.status_code == 409


def test_binary_bodies_follow_the_policy_per_action(gw: Running) -> None:
    assert fetch(gw, "binary").content == PNG
    _quarantined(fetch(gw, "binary", host="api.github.com"))


@pytest.mark.parametrize("name", ["fullwidth", "zero-width", "json-escape", "url-encoded",
                                  "spaced", "dotted"])
def test_evasions_do_not_pass(gw: Running, name: str) -> None:
    response = fetch(gw, name)
    _quarantined(response)
    assert response.json()["error"]["reason"] == "it contains US_SSN"


def _stream(gw: Running, name: str) -> tuple[httpx.Response, list[bytes]]:
    with _client(gw) as c, c.stream("GET", f"https://tools.acme.internal/canned/{name}") as r:
        return r, list(r.iter_raw())


def test_an_event_stream_is_redacted_as_it_passes_even_split_mid_address(gw: Running) -> None:
    response, chunks = _stream(gw, "sse")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert b"".join(chunks) == (b'data: {"delta": "Your contact is "}\n\n'
                                b'data: {"delta":"<EMAIL_ADDRESS> and the plan is pro"}\n\n'
                                b"data: [DONE]\n\n")
    assert len(chunks) >= 2  # streamed as events arrive, not buffered to the end
    [record] = records(gw, "call.response", request_id=response.headers[
        "X-Gatehouse-Request-Id"])
    assert [(f["field"], f["action"]) for f in record["findings"]] == [
        ("response.events[1].data.delta", "redacted")]


def test_a_stream_that_turns_to_a_quarantined_entity_is_cut_and_held(gw: Running) -> None:
    response, chunks = _stream(gw, "sse-ssn")
    body = b"".join(chunks)
    assert SSN.encode() not in body and b"[DONE]" not in body
    assert body.startswith(b'data: {"delta": "Looking up the customer"}\n\n')
    last = body.rstrip(b"\n").split(b"\n\n")[-1]
    assert last.startswith(b"event: gatehouse\ndata: ")
    stop = orjson.loads(last.split(b"data: ", 1)[1])
    assert stop["error"] == "quarantined"
    item = admin(gw, "GET", f"/v1/quarantine/{stop['quarantine_id']}", role="auditor",
                 params={"original": "true"}).json()
    assert item["request_id"] == response.headers["X-Gatehouse-Request-Id"]
    assert SSN.encode() in base64.b64decode(item["original"]["body_base64"])


def test_a_request_carrying_an_ssn_is_denied_before_it_leaves(gw: Running,
                                                             upstream: Upstream) -> None:
    probe = uuid.uuid4().hex
    with _client(gw) as c:
        leaking = c.post(f"https://tools.acme.internal/notes?probe={probe}",
                         json={"text": f"customer SSN is {SSN}"})
        clean = c.post(f"https://tools.acme.internal/notes?probe={probe}-ok",
                       json={"text": "customer asked about the plan"})
    assert leaking.status_code == 403
    assert leaking.json()["error"]["rule"] == "no-ssn-out"
    assert [r for r in upstream.requests_to("/notes") if r["query"] == f"probe={probe}"] == []
    assert clean.status_code == 200
    [record] = records(gw, "call.decided", request_id=leaking.headers["X-Gatehouse-Request-Id"])
    assert record["request_entities"] == ["US_SSN"]


def test_approving_a_clean_held_call_rechecks_the_dlp_rule_on_its_stored_bytes(
        gw: Running) -> None:
    url = f"https://tools.acme.internal/escalations?probe={uuid.uuid4().hex}"
    with _client(gw) as c:
        held = c.post(url, json={"text": "customer wants a callback"})
        assert held.status_code == 503
        pending_id = held.json()["error"]["pending_id"]
        approved = admin(gw, "POST", f"/v1/pending/{pending_id}/approve",
                         json={"reason": "fine"})
        assert approved.status_code == 200, approved.text
        assert c.post(url, json={"text": "customer wants a callback"}).status_code == 200


def test_scanning_outcomes_are_counted_in_the_metrics(gw: Running) -> None:
    fetch(gw, "contact")
    metrics = httpx.get(f"{gw.gh.admin}/metrics", trust_env=False).text
    assert 'gatehouse_responses_scanned_total{outcome="redacted"}' in metrics
    assert "gatehouse_scan_seconds_count" in metrics


def test_the_cli_lists_shows_and_releases_quarantined_responses(gw: Running) -> None:
    probe = uuid.uuid4().hex
    qid = _quarantined(fetch(gw, "customer", probe=probe))
    reviewer = ("--token", gw.people["reviewer"])
    listed = orjson.loads(gw.gh.cli("quarantine", "list", *reviewer).stdout)
    assert qid in [item["id"] for item in listed["items"]]
    shown = orjson.loads(gw.gh.cli("quarantine", "show", qid, *reviewer).stdout)
    assert SSN not in shown["redacted"] and "<US_SSN>" in shown["redacted"]
    refused = gw.gh.cli("quarantine", "show", qid, "--original", *reviewer, check=False)
    assert refused.returncode != 0
    gw.gh.cli("quarantine", "release", qid, "--reason", "plan only", *reviewer)
    assert fetch(gw, "customer", probe=probe).json()["customer"]["ssn"] == "<US_SSN>"
