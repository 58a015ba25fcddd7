"""`make bench`: every benchmark, one after another."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = ["tests.bench.bench_proxy", "tests.bench.bench_decide", "tests.bench.bench_audit",
              "tests.bench.bench_approvals", "tests.bench.bench_pending",
              "tests.bench.bench_scan_proxy", "tests.bench.bench_incidents",
              "tests.bench.bench_replicas"]

if __name__ == "__main__":
    for module in BENCHMARKS:
        print(f"\n=== {module} ===", flush=True)
        sys.argv = [module]
        runpy.run_module(module, run_name="__main__")
