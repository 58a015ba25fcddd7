"""Audit trail throughput: appends with one and with 100 concurrent appenders (group commit, a
signed checkpoint every 1,000 records), how fast `verify` walks a 100,000-record chain and checks
its checkpoints (target: at least 100,000 records/s), and how fast the trail is exported as a
signed bundle and the bundle verified.

    .venv/bin/python -m tests.bench.bench_audit [--records 100000] [--dir DIR]

Every append is durable (WAL, synchronous=FULL), so the one-appender figure is the disk's fsync
rate; the ratio against it shows what group commit buys. `--dir /dev/shm` takes the disk out and
leaves the CPU cost.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from gateway.audit import AuditLog, export, verify, verify_bundle

FIELDS = {"agent": "bench", "action": "email.send", "decision": "allow", "method": "POST",
          "url": "https://mail.example/v1/send", "params": {"to": ["bob@example.com"]},
          "rule_ids": ["mail-out"], "reason": "rule matched", "snapshot_id": "r1:0123456789ab",
          "request_hash": "ab" * 32}


async def appenders(log: AuditLog, concurrency: int, records: int) -> float:
    """Records per second with `concurrency` callers, each awaiting its appends one by one."""
    async def caller(count: int) -> None:
        for _ in range(count):
            await log.append("call.decided", FIELDS)

    share, rest = divmod(records, concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(caller(share + (i < rest)) for i in range(concurrency)))
    return records / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "audit.db"
        with AuditLog(path) as log:
            single = asyncio.run(appenders(log, 1, 1_000))
            before = log.commits
            concurrent = asyncio.run(appenders(log, 100, args.records - 1_000))
            per_commit = (args.records - 1_000) / (log.commits - before)
        started = time.perf_counter()
        report = verify(path)
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        export(path, Path(tmp) / "bundle.jsonl")
        exported = time.perf_counter() - started
        started = time.perf_counter()
        bundle = verify_bundle(Path(tmp) / "bundle.jsonl")
        checked = time.perf_counter() - started
    assert report.ok and report.records == args.records, report
    assert bundle.ok and bundle.records == args.records, bundle
    print(f"append, 1 appender:      {single:>10,.0f} records/s  (one fsync each)")
    print(f"append, 100 appenders:   {concurrent:>10,.0f} records/s  "
          f"({per_commit:.0f} records per commit, {concurrent / single:.0f}x one appender)")
    print(f"verify {report.records:,} records: {report.records / elapsed:>10,.0f} records/s  "
          f"({elapsed:.2f} s, {report.checkpoints} signed checkpoints)")
    print(f"export bundle:           {args.records / exported:>10,.0f} records/s  "
          f"({exported:.2f} s)")
    print(f"verify bundle:           {args.records / checked:>10,.0f} records/s  "
          f"({checked:.2f} s)")


if __name__ == "__main__":
    main()
