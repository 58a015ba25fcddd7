"""Incident response speed: halt latency on one node, and the incident chain and report over a
100,000-record audit trail (target: the report in under 5 s).

    .venv/bin/python -m tests.bench.bench_incidents [--records 100000] [--halts 30]

1. Halt latency: a real `gatehouse run` and an agent on a kept-alive connection. Each round
   a responder sets a halt on the agent (POST /v1/halts) and the agent's next call is timed
   from the moment the halt was requested to its 403 `halted` (halt issued → next call
   refused), then the halt is lifted and a call passes again.
2. Chain and report: a trail of `--records` records (ten agents; the incident's agent has half
   of them inside the incident window: calls, model calls, documents, results), two policy
   snapshots, and the held, approved bad call; the chain is built and the markdown report
   rendered as `GET /v1/incidents/{id}/report` does, several times, median reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from gateway.approvals.model import HeldRequest, PendingItem, State, Vote
from gateway.approvals.store import SQLitePendingStore
from gateway.audit import AuditLog
from gateway.clock import iso, utc_now
from gateway.incidents.chain import ChainBuilder
from gateway.incidents.report import report_markdown
from gateway.incidents.store import Incident
from gateway.store import SQLiteStore
from tests.e2e.conftest import start_gateway
from tests.e2e.upstream import start_upstream

POLICY = """\
version: 1
policy: bench
revision: "{revision}"
egress: {{allow: [docs.acme.example]}}
actions:
  - {{type: docs.read, match: {{host: docs.acme.example}}}}
  - {{type: email.send, match: {{method: POST, host: mail.example}}}}
rules:
  - {{id: reads, when: {{action: docs.read}}, decision: allow}}
  - {{id: outbound-email, when: {{action: email.send}}, decision: require_approval,
     tier: {tier}}}
"""


def halt_latency(rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream, stop = start_upstream(tmp)
        (tmp / "policy.yaml").write_text(POLICY.format(revision="1", tier=1))
        running = start_gateway(tmp, tmp / "policy.yaml", upstream, agents=("bench-bot",))
        responder = running.people["responder"]
        seconds = []
        try:
            with httpx.Client(proxy=running.proxy("bench-bot"), timeout=10) as agent, \
                    httpx.Client(base_url=running.gh.admin, trust_env=False, timeout=10,
                                 headers={"Authorization": f"Bearer {responder}"}) as admin:
                for _ in range(rounds):
                    assert agent.get("http://docs.acme.example/a").status_code == 200
                    started = time.perf_counter()
                    halt = admin.post("/v1/halts", json={"scope": "agent",
                                                         "target": "bench-bot",
                                                         "reason": "bench"}).json()
                    refused = agent.get("http://docs.acme.example/a")
                    seconds.append(time.perf_counter() - started)
                    assert refused.json()["error"]["type"] == "halted"
                    admin.delete(f"/v1/halts/{halt['id']}")
        finally:
            running.gh.stop()
            stop.set()
    return seconds


async def fill_trail(audit: AuditLog, records: int, bad: dict[str, object]) -> None:
    """Half the records by the incident's agent, in the window; the rest by nine others."""
    async def one(n: int) -> None:
        mine = n % 2 == 0
        agent = "support-bot" if mine else f"other-{n % 9}"
        kind = n % 10
        request_id = f"req_{n}"
        if mine and kind == 2:
            await audit.append("call.llm", {"request_id": request_id, "agent": agent,
                                            "model": "gpt-x", "temperature": 0.7,
                                            "tools": ["send_email"], "tool_calls": [
                                                {"name": "send_email", "arguments": "{}"}]})
        elif mine and kind == 4:
            await audit.append("call.document", {
                "request_id": request_id, "agent": agent, "url": f"https://d.example/{n}",
                "sha256": "ab" * 32, "instruction_like": [] if n % 1000 else ["ignore all"]})
        else:
            await audit.append("call.decided", {
                "request_id": request_id, "agent": agent, "method": "POST" if kind == 6 else "GET",
                "url": f"https://api.example/{n}", "action": "x.write" if kind == 6 else "x.read",
                "decision": "allow", "rule_ids": ["reads"], "snapshot_id": bad["snapshot_id"]})
            if kind == 6:
                await audit.append("call.result", {"request_id": request_id, "agent": agent,
                                                   "ids": {"id": f"x_{n}"}})

    for start in range(0, records, 1000):
        await asyncio.gather(*(one(n) for n in range(start, min(start + 1000, records))))
    await audit.append("call.decided", bad)


def chain_and_report(records: int, repeats: int) -> tuple[list[float], list[float], int]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        state = SQLiteStore(tmp / "state.db")
        for revision, tier in (("1", 2), ("2", 1)):
            state.record_snapshot(f"{revision}:000000000000", revision, "bench.yaml",
                                  POLICY.format(revision=revision, tier=tier))
            time.sleep(0.01)  # distinct first_active_at, in order
        pending = SQLitePendingStore(tmp / "state.db")
        now = utc_now()
        item = PendingItem(
            id="p_bench", request_hash="ab" * 32, agent="support-bot", tenant=None,
            action="email.send", tags=("write",), params={"to": "a@b.example"},
            rule_ids=("outbound-email",), reason="reviewed", rollback=None, tier=1, route=None,
            approvals_needed=1, snapshot_id="2:000000000000",
            request=HeldRequest("POST", "https", "mail.example", 443, "/send", (), (), b"{}"),
            state=State.PENDING, created_at=iso(now), expires_at=iso(now))
        pending.add(item)
        pending.vote(item.id, Vote("alice", "approve", "", iso(now), iso(now)),
                     approvals_needed=1)
        bad = {"request_id": "req_bad", "agent": "support-bot", "method": "POST",
               "url": "https://mail.example/send", "action": "email.send",
               "params": {"to": "a@b.example"}, "decision": "approved",
               "rule_ids": ["outbound-email"], "pending_id": item.id,
               "snapshot_id": "2:000000000000"}
        with AuditLog(tmp / "audit.db") as audit:
            asyncio.run(fill_trail(audit, records, bad))
            incident = Incident(id="INC-0001", title="bench", severity="SEV-2",
                                opened_at=iso(utc_now()), opened_by="rex", agent="support-bot",
                                request_id="req_bad", since=None, until=None)
            builder = ChainBuilder(audit, state, pending)
            chain_seconds, report_seconds = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                chain = builder.build(incident)
                built = time.perf_counter()
                report = report_markdown(chain)
                chain_seconds.append(built - started)
                report_seconds.append(time.perf_counter() - started)
            assert "## Rollback inventory" in report
        return chain_seconds, report_seconds, len(chain["timeline"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--halts", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    latency = sorted(halt_latency(args.halts))
    print(f"halt latency (halt requested -> the agent's next call refused), {args.halts} rounds:"
          f" median {statistics.median(latency) * 1000:.1f} ms, "
          f"max {latency[-1] * 1000:.1f} ms (target: 100 ms on one node)")

    chain, report, events = chain_and_report(args.records, args.repeats)
    print(f"incident chain over {args.records:,} audit records ({events:,} timeline events): "
          f"median {statistics.median(chain):.2f} s; chain + markdown report: median "
          f"{statistics.median(report):.2f} s, max {max(report):.2f} s (target: under 5 s)")


if __name__ == "__main__":
    main()
