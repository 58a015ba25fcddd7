"""Opening the SQLite state: several processes may start on a fresh state directory at once
(`gatehouse token create` run in parallel by a set-up script, the gateway beside them)."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.store import SQLiteStore


def test_many_openers_racing_on_a_fresh_state_file_all_succeed(tmp_path: Path) -> None:
    failures: list[str] = []
    openers = 6
    for round_ in range(200):  # the race lost about one round in fifty before the retry
        path = tmp_path / str(round_) / "state.db"
        start = threading.Barrier(openers)

        def open_store(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                SQLiteStore(path)
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                failures.append(repr(e))

        threads = [threading.Thread(target=open_store) for _ in range(openers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
