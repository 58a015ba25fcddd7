"""Allow-path throughput and latency: direct vs plain mitmdump vs Gatehouse, in one run.

    python -m tests.bench.bench_proxy [--seconds 3] [--rounds 3]

Gatehouse runs with every stage on and the durable (fsync'd, group-committed) audit trail. The
three targets are measured in interleaved rounds so machine noise hits them alike; the report
gives medians over rounds and the ratio Gatehouse / mitmdump.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.bench.load import LoadResult, build_request, run_load
from tests.e2e.gatehouse import GATEHOUSE, free_port

BIN = Path(sys.executable).parent
POLICY = """\
version: 1
policy: bench
revision: "1"
default: deny
egress:
  allow: [bench.example]
actions:
  - type: items.list
    match: { method: GET, host: bench.example, path: /items }
    tags: [read]
rules:
  - id: list-items
    when: { action: items.list }
    decision: allow
"""


def wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    import socket
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, process)
    return process


def gatehouse_token(state: Path) -> str:
    out = subprocess.run([GATEHOUSE, "token", "create", "--state", str(state), "--agent",
                          "bench-agent"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def report(name: str, results: list[LoadResult]) -> dict[str, float]:
    summary = {
        "rps": statistics.median(r.rps for r in results),
        "p50": statistics.median(r.p50_ms for r in results),
        "p99": statistics.median(r.p99_ms for r in results),
        "errors": sum(r.errors for r in results),
    }
    print(f"  {name:<22} {summary['rps']:>8.0f} req/s   p50 {summary['p50']:6.2f} ms   "
          f"p99 {summary['p99']:6.2f} ms   errors {summary['errors']:.0f}")
    return summary


def main() -> None:
    options = argparse.ArgumentParser()
    options.add_argument("--seconds", type=float, default=3.0)
    options.add_argument("--rounds", type=int, default=3)
    opts = options.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    up_port, mitm_port, gh_port, gh_admin = free_port(), free_port(), free_port(), free_port()
    (tmp / "policy.yaml").write_text(POLICY)
    state = tmp / "state"
    token = gatehouse_token(state)
    processes = [
        start([sys.executable, "-m", "tests.bench.upstream_server", str(up_port)], up_port),
        start([str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "--listen-port",
               str(mitm_port), "--set", f"confdir={tmp / 'mitm'}"], mitm_port),
        start([GATEHOUSE, "run", "--policy", str(tmp / "policy.yaml"), "--state", str(state),
               "--listen", f"127.0.0.1:{gh_port}", "--admin", f"127.0.0.1:{gh_admin}",
               "--connect-to", f"bench.example:80=127.0.0.1:{up_port}"], gh_port),
    ]
    auth = base64.b64encode(f"bench-agent:{token}".encode()).decode()
    targets = {
        "direct": (up_port, build_request("/items", f"127.0.0.1:{up_port}")),
        "mitmdump (plain)": (mitm_port, build_request(
            f"http://127.0.0.1:{up_port}/items", f"127.0.0.1:{up_port}")),
        "gatehouse": (gh_port, build_request("http://bench.example/items", "bench.example",
                                             auth)),
    }
    try:
        check = httpx.get("http://bench.example/items", timeout=5,
                          proxy=f"http://bench-agent:{token}@127.0.0.1:{gh_port}")
        assert check.status_code == 200, check.text
        results: dict[tuple[str, int], list[LoadResult]] = {}
        for concurrency in (1, 10):
            for port, request in targets.values():  # warm-up
                asyncio.run(run_load("127.0.0.1", port, request, concurrency, 0.5))
            for _ in range(opts.rounds):
                for name, (port, request) in targets.items():
                    result = asyncio.run(run_load("127.0.0.1", port, request, concurrency,
                                                  opts.seconds))
                    results.setdefault((name, concurrency), []).append(result)
        summaries = {}
        for concurrency in (1, 10):
            print(f"\nallow path, c={concurrency} (median of {opts.rounds} rounds of "
                  f"{opts.seconds:.0f} s)")
            for name in targets:
                summaries[(name, concurrency)] = report(name, results[(name, concurrency)])
        for concurrency in (1, 10):
            gh, mitm = summaries[("gatehouse", concurrency)], summaries[("mitmdump (plain)",
                                                                         concurrency)]
            print(f"\nc={concurrency}: gatehouse / mitmdump throughput = "
                  f"{gh['rps'] / mitm['rps']:.2f}x, added p50 = {gh['p50'] - mitm['p50']:+.2f} ms")
    finally:
        for process in processes:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
