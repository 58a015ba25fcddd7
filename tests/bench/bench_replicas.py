"""Replicas on PostgreSQL: the allow path on one gateway on SQLite, one on PostgreSQL and two
replicas on one PostgreSQL database; approval release across replicas; halt propagation.

    .venv/bin/python -m tests.bench.bench_replicas [--seconds 3] [--rounds 2] [--releases 20]

Every gateway is a real `gatehouse run`, in front of the bench upstream in its own process
(tests.bench.upstream_server), loaded at concurrency 10 (split over the replicas for two).
PostgreSQL is the machine's server on 127.0.0.1:5432; the bench makes a database of its own and
drops it afterwards. Release latency: the agent's call is held on replica A, a reviewer approves
through replica B, and the time from the approve call returning to the agent's 200 is taken.
Halt propagation: a halt set through B, and the time until A refuses the agent's next call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from tests.bench.bench_proxy import POLICY, report, start
from tests.bench.load import LoadResult, build_request, run_load
from tests.e2e.gatehouse import GATEHOUSE, Gatehouse, free_port

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HELD_POLICY = (POLICY + """\
  - id: writes-reviewed
    when: { action: items.create }
    decision: require_approval
approvals: { hold_seconds: 20, tiers: { 1: { approvals: 1 } } }
""").replace("actions:\n", """actions:
  - type: items.create
    match: { method: POST, host: bench.example, path: /items }
""", 1)


@contextmanager
def database() -> Iterator[str]:
    """A database of the bench's own, dropped afterwards."""
    name = f"gatehouse_bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as db:
            db.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def cli(*args: str) -> str:
    return subprocess.run([GATEHOUSE, *args], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def gateway(tmp: Path, name: str, up_port: int, store: str) -> tuple[Gatehouse, str, str]:
    """A started gateway; its agent and reviewer tokens (made on the first of a store)."""
    state = tmp / name / "state"
    state.mkdir(parents=True)
    (tmp / "policy.yaml").write_text(HELD_POLICY)
    gh = Gatehouse(state, tmp / "policy.yaml", None, extra=[
        "--store", store, "--connect-to", f"bench.example:80=127.0.0.1:{up_port}"])
    agent = cli("token", "create", "--state", str(state), "--store", store, "--agent",
                "bench-agent")
    person = cli("token", "create", "--state", str(state), "--store", store, "--reviewer",
                 "rita", "--role", "admin")
    return gh, agent, person


def replica_of(first: Gatehouse, tmp: Path, name: str, up_port: int, store: str) -> Gatehouse:
    """Another gateway on the same store, sharing the audit signing key as operators do."""
    state = tmp / name / "state"
    state.mkdir(parents=True)
    for key in ("audit-signing.key", "audit-signing.pub"):
        shutil.copy(first.state / key, state / key)
    return Gatehouse(state, first.policy, None, extra=[
        "--store", store, "--connect-to", f"bench.example:80=127.0.0.1:{up_port}"]).start()


async def split_load(ports: list[int], request: bytes, concurrency: int,
                     seconds: float) -> LoadResult:
    share = concurrency // len(ports)
    results = await asyncio.gather(*(run_load("127.0.0.1", port, request, share, seconds)
                                     for port in ports))
    return LoadResult(sum(r.requests for r in results), max(r.seconds for r in results),
                      [x for r in results for x in r.latencies], sum(r.errors for r in results))


def release_latency(a: Gatehouse, b: Gatehouse, agent: str, person: str,
                    rounds: int) -> list[float]:
    seconds = []
    proxy = a.proxy_url("bench-agent", agent)
    with httpx.Client(proxy=proxy, timeout=30) as client, httpx.Client(
            base_url=b.admin, trust_env=False, timeout=10,
            headers={"Authorization": f"Bearer {person}"}) as admin, \
            ThreadPoolExecutor(1) as pool:
        for n in range(rounds):
            waiting = pool.submit(client.post, "http://bench.example/items", json={"n": n})
            while not (items := admin.get("/v1/pending").json()["items"]):
                time.sleep(0.01)
            admin.post(f"/v1/pending/{items[0]['id']}/approve", json={"reason": "bench"})
            approved = time.perf_counter()
            answer = waiting.result(timeout=30)
            seconds.append(time.perf_counter() - approved)
            # the bench upstream answers only GET: what matters is that the call went out
            assert answer.headers.get("X-Gatehouse-Decision") == "approved", answer.text
    return seconds


def halt_propagation(a: Gatehouse, b: Gatehouse, agent: str, person: str,
                     rounds: int) -> list[float]:
    seconds = []
    with httpx.Client(proxy=a.proxy_url("bench-agent", agent), timeout=10) as client, \
            httpx.Client(base_url=b.admin, trust_env=False, timeout=10,
                         headers={"Authorization": f"Bearer {person}"}) as admin:
        for _ in range(rounds):
            assert client.get("http://bench.example/items").status_code == 200
            halt = admin.post("/v1/halts", json={"scope": "agent", "target": "bench-agent",
                                                 "reason": "bench"}).json()
            started = time.perf_counter()
            while client.get("http://bench.example/items").status_code != 403:
                pass
            seconds.append(time.perf_counter() - started)
            admin.delete(f"/v1/halts/{halt['id']}")
            while client.get("http://bench.example/items").status_code != 200:
                pass
    return seconds


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--releases", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-replicas-"))
    up_port = free_port()
    upstream = start([sys.executable, "-m", "tests.bench.upstream_server", str(up_port)],
                     up_port)
    running: list[Gatehouse] = []
    try:
        with database() as url:
            lite, lite_agent, _ = gateway(tmp, "sqlite", up_port, "sqlite")
            first, agent, person = gateway(tmp, "pg-a", up_port, url)
            running += [lite.start(), first.start()]
            second = replica_of(first, tmp, "pg-b", up_port, url)
            running.append(second)

            def request(token: str) -> bytes:
                auth = base64.b64encode(f"bench-agent:{token}".encode()).decode()
                return build_request("http://bench.example/items", "bench.example", auth)

            targets = {"one on SQLite": ([lite.proxy_port], request(lite_agent)),
                       "one on PostgreSQL": ([first.proxy_port], request(agent)),
                       "two on PostgreSQL": ([first.proxy_port, second.proxy_port],
                                             request(agent))}
            results: dict[str, list[LoadResult]] = {}
            for ports, body in targets.values():  # warm-up
                asyncio.run(split_load(ports, body, 10, 0.5))
            for _ in range(args.rounds):
                for name, (ports, body) in targets.items():
                    results.setdefault(name, []).append(
                        asyncio.run(split_load(ports, body, 10, args.seconds)))
            print(f"allow path, c=10 (median of {args.rounds} rounds of {args.seconds:.0f} s)")
            summaries = {name: report(name, found) for name, found in results.items()}
            base = summaries["one on SQLite"]["rps"]
            print("  ratios to one on SQLite: " + ", ".join(
                f"{name} {s['rps'] / base:.2f}x" for name, s in summaries.items()))
            release = release_latency(first, second, agent, person, args.releases)
            print(f"approval through B releases the call held on A ({args.releases} calls): "
                  f"{ms(release)} (target: p99 under 500 ms)")
            halts = halt_propagation(first, second, agent, person, 10)
            print(f"halt set through B -> next call on A refused (10 rounds): {ms(halts)} "
                  "(target: within 1 s)")
            for gh in running:
                gh.stop()
            running.clear()
    finally:
        for gh in running:
            gh.stop()
        upstream.terminate()
        upstream.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
