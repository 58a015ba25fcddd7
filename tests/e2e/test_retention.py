"""Retention and legal holds through the real gateway and CLI: a sweep deletes the evidence
past its retention, except what a legal hold covers, and says so in the audit trail."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Running, serving
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: retention
revision: "1"
egress: {allow: [docs.acme.example]}
actions: [{type: docs.read, match: {host: docs.acme.example}}]
rules: [{id: reads, when: {action: docs.read}, decision: allow}]
evidence: {keep: always}
retention: {evidence: 1s}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "retention", POLICY) as running:
        yield running


def kept_files(gw: Running, agent: str) -> list[str]:
    with gw.client(agent) as bot:
        response = bot.get(f"https://docs.acme.example/{agent}")
    record = gw.wait_for_audit("call.evidence",
                               request_id=response.headers["X-Gatehouse-Request-Id"])
    return [record["evidence"]["request"], record["evidence"]["response"]]


def readable(gw: Running, digest: str) -> bool:
    return gw.gh.admin_call("GET", f"/v1/evidence/{digest}",
                            gw.people["auditor"]).status_code == 200


def sweep(gw: Running, *flags: str) -> dict[str, object]:
    return json.loads(gw.gh.cli("retention", "sweep", "--state", str(gw.gh.state),
                                *flags).stdout)


def hold(gw: Running, role: str = "auditor", **body: object) -> dict[str, object]:
    response = gw.gh.admin_call("POST", "/v1/holds/legal", gw.people[role], json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_legal_hold_survives_a_retention_sweep(gw: Running) -> None:
    held, free = kept_files(gw, "support-bot"), kept_files(gw, "ops-bot")
    placed = hold(gw, agent="support-bot", reason="claim 2026-114")
    time.sleep(1.2)  # past the one-second retention

    assert sweep(gw, "--dry-run")["deleted"] == 2
    assert all(readable(gw, d) for d in held + free)  # a dry run deletes nothing

    report = sweep(gw)
    assert sorted(report["digests"]) == sorted(free) and report["held"] == 2
    assert not any(readable(gw, d) for d in free)
    assert all(readable(gw, d) for d in held)
    deleted = gw.wait_for_audit("evidence.deleted", actor="retention sweep")
    assert sorted(deleted["digests"]) == sorted(free)

    released = gw.gh.admin_call("DELETE", f"/v1/holds/legal/{placed['id']}",
                                gw.people["auditor"])
    assert released.status_code == 200 and released.json()["active"] is False
    assert sorted(sweep(gw)["digests"]) == sorted(held)
    assert not any(readable(gw, d) for d in held)


def test_holds_are_listed_and_a_bad_hold_says_what_is_wrong(gw: Running) -> None:
    placed = hold(gw, since="2026-01-01T00:00:00Z", until="2026-02-01T00:00:00Z",
                  reason="audit of January")
    listed = gw.gh.admin_call("GET", "/v1/holds/legal", gw.people["responder"]).json()["items"]
    assert placed["id"] in [h["id"] for h in listed]
    for body, words in (({"agent": "a", "since": "2026-01-01T00:00:00Z", "reason": "x"}, "one of"),
                        ({"agent": "a"}, "needs a `reason`"),
                        ({"incident": "INC-9999", "reason": "x"}, "no incident")):
        refused = gw.gh.admin_call("POST", "/v1/holds/legal", gw.people["auditor"], json=body)
        assert refused.status_code == 422 and words in refused.json()["error"]["message"]
    assert gw.gh.admin_call("POST", "/v1/holds/legal", gw.people["reviewer"],
                            json={"agent": "a", "reason": "x"}).status_code == 403
    again = gw.gh.admin_call("DELETE", f"/v1/holds/legal/{placed['id']}", gw.people["auditor"])
    assert again.status_code == 200
    twice = gw.gh.admin_call("DELETE", f"/v1/holds/legal/{placed['id']}", gw.people["auditor"])
    assert twice.status_code == 409
