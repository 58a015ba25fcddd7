"""Policy evaluation cost (egress check + classification + decision) with a 10,000-rule policy.

    .venv/bin/python tests/bench/bench_decide.py [--rules 10000] [--calls 50000]

The policy spreads its rules over many hosts and action types (exact types, `*` globs, MCP tool
templates, param conditions, agent and tenant conditions); the calls mix reads, JSON writes,
MCP tool calls and refused hosts. Target: p50 under 50 µs. The same calls against a policy
with 1/100 of the rules show that the cost does not grow with rules for other actions.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a plain script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from gateway.call import Call  # noqa: E402
from gateway.policy import Policy, evaluate, load_policy_text  # noqa: E402

NOW = datetime(2030, 1, 1, tzinfo=UTC)
RULES_PER_HOST = 20


def build_policy(rules: int) -> dict[str, object]:
    """A policy with `rules` rules over rules/20 hosts, four action entries per host."""
    hosts = max(1, rules // RULES_PER_HOST)
    actions: list[dict[str, object]] = []
    rule_list: list[dict[str, object]] = []
    for i in range(hosts):
        host, svc = f"svc{i}.bench.example", f"svc{i}"
        actions += [
            {"type": f"{svc}.read", "match": {"method": "GET", "host": host,
                                               "path": "/v1/items/{id}"},
             "params": {"id": "path:id"}},
            {"type": f"{svc}.create", "match": {"method": "POST", "host": host,
                                                 "path": "/v1/items"},
             "tags": ["write"],
             "params": {"amount": "json:$.amount", "owner": "json:$.owner.email"}},
            {"type": f"{svc}.delete", "match": {"method": "DELETE", "host": host,
                                                 "path": "/v1/items/{id}"},
             "tags": ["write"], "params": {"id": "path:id"}},
            {"type": f"mcp.{svc}.{{tool}}", "match": {"host": host, "path": "/mcp",
                                                       "mcp": "tools/call"},
             "params": {"path": "mcp:arguments.path"}},
        ]
        per_host = [
            {"id": f"{svc}-reads", "when": {"action": f"{svc}.read"}, "decision": "allow"},
            {"id": f"{svc}-small", "when": {"action": f"{svc}.create",
                                             "params": {"amount": {"lt": 1000}}},
             "decision": "allow_with_constraints", "constraints": {"timeout_seconds": 30}},
            {"id": f"{svc}-big", "when": {"action": f"{svc}.create",
                                           "params": {"amount": {"gte": 1000}}},
             "decision": "require_approval", "tier": 2},
            {"id": f"{svc}-rival", "when": {"action": f"{svc}.create",
                                             "params": {"owner": {"glob": "*@rival.example"}}},
             "decision": "deny"},
            {"id": f"{svc}-deletes", "when": {"action": f"{svc}.delete"},
             "decision": "require_approval", "tier": 3},
            {"id": f"{svc}-mcp-reads", "when": {"action": f"mcp.{svc}.read_*"},
             "decision": "allow"},
            {"id": f"{svc}-mcp-etc", "when": {"action": f"mcp.{svc}.delete_*",
                                               "params": {"path": {"glob": "/etc/*"}}},
             "decision": "deny"},
            {"id": f"{svc}-shadow", "when": {"action": f"{svc}.*", "agent": "night-*"},
             "decision": "deny", "mode": "shadow"},
        ]
        for k in range(RULES_PER_HOST - len(per_host)):  # bands of amounts, per agent or tenant
            when: dict[str, object] = {
                "action": f"{svc}.create",
                "params": {"amount": {"gte": k * 500, "lt": (k + 1) * 500}},
            }
            when["agent" if k % 2 else "tenant"] = f"bot-{k}" if k % 2 else f"tenant-{k}"
            per_host.append({"id": f"{svc}-band-{k}", "when": when,
                             "decision": "require_approval", "tier": 1})
        rule_list += per_host
    return {
        "version": 1, "policy": "bench", "revision": "1", "default": "deny",
        "egress": {"allow": [f"svc{i}.bench.example" for i in range(hosts)]
                   + ["*.cdn.bench.example"]},
        "actions": actions,
        "rules": rule_list[:rules],
        "approvals": {"tiers": {1: {}, 2: {"approvals": 1}, 3: {"approvals": 2}}},
        "agents": {f"bot-{k}": {"tenant": f"tenant-{k}"} for k in range(RULES_PER_HOST)},
    }


def make_calls(count: int, hosts: int, seed: int = 7) -> list[Call]:
    rng = random.Random(seed)
    calls: list[Call] = []
    for _ in range(count):
        host = f"svc{rng.randrange(hosts)}.bench.example"
        agent = f"bot-{rng.randrange(RULES_PER_HOST)}"
        kind = rng.random()
        if kind < 0.4:
            calls.append(Call("GET", "https", host, 443, f"/v1/items/{rng.randrange(10**6)}",
                              agent=agent))
        elif kind < 0.75:
            body = {"amount": rng.randrange(5000), "owner": {"email": f"u{rng.randrange(99)}@"
                    + rng.choice(["customer.example", "rival.example"])}, "note": "x" * 200}
            calls.append(Call("POST", "https", host, 443, "/v1/items", body=json.dumps(body)
                              .encode(), headers=(("content-type", "application/json"),),
                              agent=agent))
        elif kind < 0.85:
            tool = rng.choice(["read_file", "delete_file", "write_file"])
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": tool, "arguments": {"path": rng.choice(["/etc/x", "/a"])}}}
            calls.append(Call("POST", "https", host, 443, "/mcp", body=json.dumps(body).encode(),
                              agent=agent))
        elif kind < 0.95:
            calls.append(Call("DELETE", "https", host, 443, "/v1/items/9", agent=agent))
        else:
            calls.append(Call("GET", "https", "elsewhere.example", 443, "/", agent=agent))
    return calls


def measure(policy: Policy, calls: list[Call]) -> list[float]:
    """Microseconds per evaluate, after one warm-up pass."""
    for call in calls[:2000]:
        evaluate(policy, call, NOW)
    timings: list[float] = []
    clock = time.perf_counter_ns
    for call in calls:
        started = clock()
        evaluate(policy, call, NOW)
        timings.append((clock() - started) / 1000)
    return timings


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()

    results = {}
    for rules in (args.rules, max(RULES_PER_HOST, args.rules // 100)):
        text = yaml.safe_dump(build_policy(rules), sort_keys=False)
        started = time.perf_counter()
        policy = load_policy_text(text, f"<bench {rules} rules>")
        loaded = time.perf_counter() - started
        hosts = max(1, rules // RULES_PER_HOST)
        timings = measure(policy, make_calls(args.calls, hosts))
        results[rules] = timings
        print(f"{len(policy.model.rules):>6,} rules, {len(policy.model.actions):>5,} actions "
              f"(load {loaded:.2f} s): evaluate p50 {percentile(timings, 50):6.1f} µs, "
              f"p99 {percentile(timings, 99):6.1f} µs, mean {statistics.fmean(timings):6.1f} µs "
              f"over {len(timings):,} calls")
    big, small = (results[k] for k in results)
    ratio = percentile(big, 50) / percentile(small, 50)
    print(f"p50 with {args.rules:,} rules / p50 with {args.rules // 100:,}: {ratio:.2f}x "
          f"(target p50 < 50 µs: {'met' if percentile(big, 50) < 50 else 'MISSED'})")


if __name__ == "__main__":
    main()
