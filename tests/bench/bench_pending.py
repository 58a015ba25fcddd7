"""Pending store throughput: add, get, find_reusable, vote and consume, one after another, on a
real SQLite file.

    .venv/bin/python -m tests.bench.bench_pending [--items 2000] [--backlog 20000] [--dir DIR]

Every write is durable (WAL, synchronous=FULL), so add, vote and consume run at about the
disk's fsync rate; the reads show what an admin page or a retry costs. `--backlog` decided
items are written first, so the lookups run against a table that has some history.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gateway.approvals.model import HeldRequest, PendingItem, State, Vote, new_pending_id
from gateway.approvals.store import SQLitePendingStore
from gateway.clock import utc_now_iso

TEMPLATE = PendingItem(
    id="", request_hash="", agent="bench", tenant=None, action="email.send",
    tags=("external",), params={"to": ["bob@example.com"], "subject": "hello"},
    rule_ids=("mail-out",), reason="external mail needs a reviewer", rollback=None, tier=2,
    route="support-leads", approvals_needed=1, snapshot_id="1.0:0123456789ab",
    request=HeldRequest(method="POST", scheme="https", host="mail.example", port=443,
                        path="/v1/send", query=(),
                        headers=(("Content-Type", "application/json"),),
                        body=b'{"to": ["bob@example.com"], "subject": "hello"}' * 20),
    state=State.PENDING, created_at="", expires_at="9999-12-31T00:00:00.000000Z")


def item(n: int, state: State = State.PENDING) -> PendingItem:
    return replace(TEMPLATE, id=new_pending_id(), request_hash=f"{n:064x}", state=state,
                   created_at=utc_now_iso())


def rate(ids: list[str], operation: Callable[[str], object]) -> float:
    started = time.perf_counter()
    for item_id in ids:
        operation(item_id)
    return len(ids) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, help="where to put the database (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = SQLitePendingStore(Path(tmp) / "state.db")
        for n in range(args.backlog):
            store.add(item(args.items + n, State.CONSUMED))
        items = [item(n) for n in range(args.items)]
        by_id = {i.id: i for i in items}
        ids = list(by_id)
        vote = Vote("rex", "approve", "checked", utc_now_iso(), None)
        results = {
            "add": rate(ids, lambda item_id: store.add(by_id[item_id])),
            "get": rate(ids, store.get),
            "find_reusable": rate(ids, lambda item_id: store.find_reusable(
                "bench", by_id[item_id].request_hash)),
            "vote": rate(ids, lambda item_id: store.vote(item_id, vote, approvals_needed=1)),
            "consume": rate(ids, store.consume),
        }
        assert all(i.state is State.CONSUMED for i in store.list(agent="bench", limit=-1))
        store.close()
    print(f"{args.items:,} items over a backlog of {args.backlog:,} decided items")
    for name, per_second in results.items():
        print(f"{name + ':':<15}{per_second:>10,.0f} ops/s")


if __name__ == "__main__":
    main()
