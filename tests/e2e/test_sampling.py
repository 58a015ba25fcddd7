"""The post-execution review queue through the real gateway: a first-time action and a large
refund are drawn, a reviewer records verdicts, each once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Running, serving
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: sampling
revision: "1"
egress: {allow: [api.stripe.com, docs.acme.example]}
actions:
  - type: payments.refund
    match: {method: POST, host: api.stripe.com, path: /v1/refunds}
    params: {amount_cents: "json:$.amount"}
  - {type: docs.read, match: {method: GET, host: docs.acme.example}}
rules:
  - {id: reads, when: {action: docs.read}, decision: allow}
  - {id: refunds, when: {action: payments.refund}, decision: allow}
sampling:
  first_time: true
  always: [{actions: payments.*, params: {amount_cents: {gte: 10000}}}]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Running]:
    with serving(tmp_path_factory, upstream, "sampling", POLICY,
                 agents=("support-bot",)) as running:
        yield running


def test_drawn_calls_wait_for_a_review_and_take_one_verdict(gw: Running) -> None:
    with gw.client("support-bot") as bot:
        first, second = (bot.get(f"https://docs.acme.example/{n}") for n in (1, 2))
        small = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 500})
        big = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 25000})
    ids = {name: r.headers["X-Gatehouse-Request-Id"]
           for name, r in (("first", first), ("second", second), ("small", small), ("big", big))}
    reviewer = gw.people["reviewer"]
    queue = gw.gh.admin_call("GET", "/v1/samples", reviewer).json()["items"]
    reasons = {item["request_id"]: item["reason"] for item in queue}
    # the first refund is also a first-time action; the big one is drawn by the mandatory rule
    assert reasons == {ids["first"]: "first_time_action", ids["small"]: "first_time_action",
                       ids["big"]: "mandatory"}

    judged = gw.gh.admin_call("POST", f"/v1/samples/{ids['big']}/verdict", reviewer,
                              json={"verdict": "problem", "note": "refund to the wrong card"})
    assert judged.status_code == 200 and judged.json()["reviewer"] == "reviewer-person"
    again = gw.gh.admin_call("POST", f"/v1/samples/{ids['big']}/verdict", reviewer,
                             json={"verdict": "fine"})
    assert again.status_code == 409
    assert gw.gh.admin_call("POST", f"/v1/samples/{ids['second']}/verdict", reviewer,
                            json={"verdict": "fine"}).status_code == 404
    assert gw.gh.admin_call("POST", f"/v1/samples/{ids['first']}/verdict", reviewer,
                            json={"verdict": "maybe"}).status_code == 422

    still_open = gw.gh.admin_call("GET", "/v1/samples", reviewer).json()["items"]
    assert ids["big"] not in {item["request_id"] for item in still_open}
    everything = gw.gh.admin_call("GET", "/v1/samples?state=all", reviewer).json()["items"]
    assert {item["request_id"]: item["verdict"] for item in everything}[ids["big"]] == "problem"
    record = gw.wait_for_audit("sample.verdict", request_id=ids["big"])
    assert record["note"] == "refund to the wrong card"
