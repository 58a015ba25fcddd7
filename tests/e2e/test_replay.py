"""`gatehouse replay` against the trail of a real gateway: a stricter candidate lists the
calls it would decide differently, and exits 1 so a pipeline can stop the change."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: replay
revision: "{revision}"
egress: {{allow: [api.stripe.com, docs.acme.example]}}
actions:
  - type: payments.refund
    match: {{method: POST, host: api.stripe.com, path: /v1/refunds}}
    params: {{amount_cents: "json:$.amount"}}
  - {{type: docs.read, match: {{method: GET, host: docs.acme.example}}}}
rules:
  - {{id: reads, when: {{action: docs.read}}, decision: allow}}
{refunds}
"""
LENIENT = "  - {id: refunds, when: {action: payments.refund}, decision: allow}\n"
STRICT = ("  - {id: refunds, when: {action: payments.refund}, decision: allow}\n"
          "  - {id: big-refunds, when: {action: payments.refund, params: {amount_cents: "
          "{gte: 10000}}}, decision: require_approval, reason: big}\n")


def test_a_stricter_candidate_lists_the_calls_it_would_change(
        tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> None:
    tmp = tmp_path_factory.mktemp("replay")
    (tmp / "running.yaml").write_text(POLICY.format(revision="1", refunds=LENIENT))
    (tmp / "candidate.yaml").write_text(POLICY.format(revision="2", refunds=STRICT))
    running = start_gateway(tmp, tmp / "running.yaml", upstream, agents=("support-bot",))
    try:
        trust = ssl.create_default_context(cafile=running.gh.ca_bundle)
        with httpx.Client(proxy=running.proxy("support-bot"), verify=trust) as bot:
            assert bot.get("https://docs.acme.example/a").status_code == 200
            big = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 25000})
            small = bot.post("https://api.stripe.com/v1/refunds", json={"amount": 500})
        assert big.status_code == small.status_code == 200

        def replayed(candidate: Path, *flags: str) -> tuple[int, str]:
            result = running.gh.cli("replay", str(candidate), "--state",
                                    str(running.gh.state), *flags, check=False)
            return result.returncode, result.stdout

        code, text = replayed(tmp / "candidate.yaml")
        assert code == 1, text
        big_id = big.headers["X-Gatehouse-Request-Id"]
        assert f"{big_id} support-bot payments.refund: allow → require_approval" in text
        assert small.headers["X-Gatehouse-Request-Id"] not in text
        assert text.strip().endswith("1 would change, 0 skipped")

        code, text = replayed(tmp / "candidate.yaml", "--json")
        changes = json.loads(text)["changes"]
        assert [(c["request_id"], c["rules_would_be"]) for c in changes] == [
            (big_id, ["big-refunds"])]

        code, text = replayed(tmp / "running.yaml", "--since", "2020-01-01T00:00:00Z")
        assert code == 0 and "0 would change" in text
    finally:
        running.gh.stop()
