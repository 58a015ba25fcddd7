"""One way to open Gatehouse's PostgreSQL state, for every store that lives in it.

Opening connects once on its own (so an unreachable server is named plainly, not as a pool
timeout), brings the schema to this version (`gateway.postgres.migrations`), then keeps a small
pool whose connections are checked on checkout: a database that restarted is reconnected to by
itself, and until then every call fails with a `StoreError` (the gateway fails closed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from gateway.postgres.migrations import migrate
from gateway.store import StoreError

CONNECT_TIMEOUT_SECONDS = 5
# as long as SQLite's busy timeout: a call waits this long for a free connection, then fails
POOL_TIMEOUT_SECONDS = 5.0
SCHEMES = ("postgresql", "postgres")

Row = tuple[Any, ...]
Connection = psycopg.Connection[Row]


def safe_url(url: str) -> str:
    """The URL without its password (in the user part or the query), fit for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host, query=query))


def settings(what: str) -> dict[str, object]:
    """Connection settings; `application_name` shows in pg_stat_activity, so an operator (or a
    test cutting connections) sees whose connections these are."""
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": f"gatehouse {what}"}


def open_migrated(url: str, what: str) -> Connection:
    """One connection of its own to a database whose schema is brought to this version; an
    unreachable server is named plainly (raises StoreError)."""
    if urlsplit(url).scheme not in SCHEMES:
        raise StoreError(f"cannot open the {what}: `{safe_url(url)}` is not a postgresql:// URL")
    try:
        db = psycopg.connect(url, **settings(what))
    except psycopg.OperationalError as e:
        reason = " ".join(str(e).split()) or type(e).__name__  # libpq's lines as one
        raise StoreError(
            f"cannot open the {what}: PostgreSQL at `{safe_url(url)}` did not let Gatehouse in: "
            f"{reason}; check that the server runs and that the URL's host, port, user "
            "and database are right (create the database first with `createdb`)") from e
    try:
        migrate(db)
    except psycopg.Error as e:
        db.close()
        raise StoreError(f"cannot open the {what} at `{safe_url(url)}`: {e}") from e
    except BaseException:
        db.close()
        raise
    return db


class Database:
    """A pool of connections to a PostgreSQL database whose schema is at this version.
    `what` names the store in every error, as the SQLite stores do."""

    def __init__(self, url: str, what: str, *, max_size: int = 4) -> None:
        self.what = what
        self.url = safe_url(url)
        self._conninfo, self._settings = url, settings(what)
        open_migrated(url, what).close()
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_size, open=False, name=what,
            timeout=POOL_TIMEOUT_SECONDS, check=ConnectionPool.check_connection, num_workers=1,
            kwargs={**self._settings, "autocommit": True})
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as e:
            self._pool.close()
            raise StoreError(f"cannot open the {what} at `{self.url}`: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on a pooled connection: committed when the block ends, rolled back
        when it raises. Database errors become `StoreError`s; others pass through."""
        try:
            with self.connection() as db, db.transaction():
                yield db
        except psycopg.Error as e:
            raise StoreError(f"{self.what}: {e}") from e

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection in autocommit mode, for a caller running its own transactions
        (database errors pass through as they are)."""
        with self._pool.connection() as db:
            yield db

    def connect(self) -> Connection:
        """A connection of its own, outside the pool, in autocommit mode: for a long-lived
        user such as the audit writer, which would otherwise hold a pooled one for good."""
        return psycopg.connect(self._conninfo, autocommit=True, **self._settings)

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        with self.transaction() as db:
            return db.execute(sql, args).fetchall()

    def change(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run one write; how many rows it touched."""
        with self.transaction() as db:
            return db.execute(sql, args).rowcount

    def close(self) -> None:
        self._pool.close()
