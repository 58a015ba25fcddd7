"""Evidence of decided calls, through the real gateway: bodies kept as the policy says, the
original response beside the redacted one, read back only by auditors, each read audited; and
a replay over kept requests is exact."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.canned import EMAIL
from tests.e2e.conftest import Running, serving
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: evidence
revision: "{revision}"
egress: {{allow: [api.stripe.com, tools.acme.internal, docs.acme.example]}}
actions:
  - type: payments.refund
    match: {{method: POST, host: api.stripe.com, path: /v1/refunds}}
    params: {{amount_cents: "json:$.amount"}}
  - {{type: crm.read, match: {{method: GET, host: tools.acme.internal}}}}
  - {{type: docs.read, match: {{method: GET, host: docs.acme.example}}}}
rules:
  - {{id: reads, when: {{action: [crm.read, docs.read]}}, decision: allow}}
  - {{id: refunds, when: {{action: payments.refund}}, decision: allow}}
{extra}
evidence:
  keep: on_hold
  overrides: [{{actions: ["payments.*", "crm.*"], keep: always}}]
responses: {{tier: patterns, detect: [EMAIL_ADDRESS], redact: [EMAIL_ADDRESS]}}
"""
DENY_HUGE = ("  - {id: huge, when: {action: payments.refund, params: {amount_cents: "
             "{gte: 1000000}}}, decision: deny}\n")
HOLD_BIG = ("  - {id: big, when: {action: payments.refund, params: {amount_cents: {gte: 10000}}},"
            " decision: require_approval}\n")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "evidence",
                 POLICY.format(revision="1", extra=DENY_HUGE),
                 agents=("support-bot",)) as running:
        (running.gh.policy.parent / "candidate.yaml").write_text(
            POLICY.format(revision="2", extra=DENY_HUGE + HOLD_BIG))
        yield running


def read(gw: Running, digest: object, role: str = "auditor") -> httpx.Response:
    return gw.gh.admin_call("GET", f"/v1/evidence/{digest}", gw.people[role])


def kept(gw: Running, response: httpx.Response) -> dict[str, object]:
    record = gw.wait_for_audit("call.evidence",
                               request_id=response.headers["X-Gatehouse-Request-Id"])
    return record["evidence"]


def test_a_refund_is_kept_whole_and_read_back_by_an_auditor_with_the_read_audited(
        gw: Running) -> None:
    with gw.client("support-bot") as bot:
        refund = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 25000})
    assert refund.status_code == 200
    files = kept(gw, refund)
    assert files["keep"] == "always" and files["redacted_response"] is None
    request = read(gw, files["request"]).json()
    assert (request["method"], request["url"]) == ("POST", "https://api.stripe.com/v1/refunds")
    assert json.loads(request["body_text"]) == {"amount": 25000}
    assert not any(k.lower() == "proxy-authorization" for k, _ in request["headers"])
    response = read(gw, files["response"]).json()
    assert response["status"] == 200 and "/v1/refunds" in response["body_text"]
    gw.wait_for_audit("evidence.read", digest=files["request"], reader="auditor-person")
    assert read(gw, files["request"], "reviewer").status_code == 403


def test_the_original_response_is_kept_beside_the_redacted_one(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        contact = bot.get("https://tools.acme.internal/canned/contact")
    assert EMAIL not in contact.text and "<EMAIL_ADDRESS>" in contact.text
    files = kept(gw, contact)
    assert EMAIL in read(gw, files["response"]).json()["body_text"]
    redacted = read(gw, files["redacted_response"]).json()["body_text"]
    assert EMAIL not in redacted and "<EMAIL_ADDRESS>" in redacted


def test_a_refused_call_keeps_its_request_and_an_unheld_read_keeps_nothing(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        refused = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 5000000})
        page = bot.get("https://docs.acme.example/page")
    assert refused.status_code == 403
    files = kept(gw, refused)
    assert files["request"] and files["response"] is None
    page_id = page.headers["X-Gatehouse-Request-Id"]
    assert not [r for r in gw.audit("call.evidence") if r["request_id"] == page_id]


def test_missing_evidence_is_not_found(gw: Running) -> None:
    assert read(gw, "0" * 64).status_code == 404
    assert read(gw, "not-a-digest").status_code == 404


def test_a_replay_over_kept_requests_is_exact(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        big = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 30000})
    kept(gw, big)
    result = gw.gh.cli("replay", str(gw.gh.policy.parent / "candidate.yaml"), "--json",
                       "--state", str(gw.gh.state), check=False)
    assert result.returncode == 1, result.stderr
    changes = {c["request_id"]: c for c in json.loads(result.stdout)["changes"]}
    change = changes[big.headers["X-Gatehouse-Request-Id"]]
    assert (change["would_be"], change["fidelity"]) == ("require_approval", "exact")
