"""One way to open Gatehouse's SQLite state, for every store that lives in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_database(path: Path) -> sqlite3.Connection:
    """WAL and `synchronous=FULL` (a commit is durable when it returns), a busy timeout so
    several connections and processes share the file, and autocommit: every store runs its
    own explicit transactions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db
