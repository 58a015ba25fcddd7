"""One way to open Gatehouse's SQLite state, for every store that lives in it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_SECONDS = 5.0


def open_database(path: Path) -> sqlite3.Connection:
    """WAL and `synchronous=FULL` (a commit is durable when it returns), a busy timeout so
    several connections and processes share the file, and autocommit: every store runs its
    own explicit transactions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                         timeout=BUSY_TIMEOUT_SECONDS)
    _enter_wal(db)
    db.execute("PRAGMA synchronous=FULL")
    return db


def _enter_wal(db: sqlite3.Connection) -> None:
    """Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, while another process does the same; so
    several `gatehouse` commands started together on a fresh state directory retry here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
