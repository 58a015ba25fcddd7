"""The replica benchmark, small: it runs against real gateways on PostgreSQL and reports each
figure it promises."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from tests.bench.bench_replicas import SERVER
from tests.conftest import missing


def test_the_replica_benchmark_reports_throughput_release_and_halt_figures() -> None:
    try:
        psycopg.connect(SERVER, connect_timeout=5).close()
    except psycopg.OperationalError as e:
        missing(f"PostgreSQL is unreachable: {e}")
    run = subprocess.run([sys.executable, "-m", "tests.bench.bench_replicas", "--seconds",
                          "0.3", "--rounds", "1", "--releases", "2"],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    for line in ("one on SQLite", "one on PostgreSQL", "two on PostgreSQL",
                 "approval through B releases the call held on A",
                 "halt set through B -> next call on A refused"):
        assert line in run.stdout, run.stdout
    loads = [line for line in run.stdout.splitlines() if "req/s" in line]
    assert len(loads) == 3 and all(line.rstrip().endswith("errors 0") for line in loads), loads
