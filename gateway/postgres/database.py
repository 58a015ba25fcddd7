"""One way to open Gatehouse's PostgreSQL state, for every store that lives in it.

Opening connects once on its own (so an unreachable server is named plainly, not as a pool
timeout), brings the schema to this version (`gateway.postgres.migrations`), then keeps a small
pool whose connections are checked on checkout: a database that restarted is reconnected to by
itself, and until then every call fails with a `StoreError` (the gateway fails closed).

Stores are called from the gateway's event loop, so a call must not sit out the pool's timeout
while the server is away: the first store to lose a connection (or to wait for one in vain)
marks the server lost for every store on that URL (`Reachability`), and from then on they
refuse at once while a thread probes the server every second. The first probe that gets in
lets them all through again: service resumes by itself, with no backoff to sit out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.postgres.migrations import migrate
from gateway.store import StoreError

log = logging.getLogger("gatehouse.postgres")

CONNECT_TIMEOUT_SECONDS = 5
PROBE_SECONDS = 1.0  # between attempts to reach a server that was lost
CHECKOUT_TURN_SECONDS = 0.05  # how long a checkout waits before looking whether it was lost
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


class Reachability:
    """Whether the server at one URL is known to be out of reach, shared by every store on it."""

    _all: dict[str, Reachability] = {}
    _made = threading.Lock()

    def __init__(self, url: str) -> None:
        self._url = url
        self._lost = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, url: str) -> Reachability:
        with cls._made:
            return cls._all.setdefault(url, cls(url))

    def check(self, what: str) -> None:
        """Raise StoreError at once while the server is lost."""
        if self._lost.is_set():
            raise StoreError(f"{what}: PostgreSQL at `{safe_url(self._url)}` is out of reach; "
                             f"calls that need it are refused until it is back")

    def lose(self, reason: object) -> None:
        """Mark the server lost and start probing it, unless that is under way."""
        with self._lock:
            if self._lost.is_set():
                return
            self._lost.set()
        log.warning("PostgreSQL at %s is out of reach (%s): refusing calls that need it and "
                    "trying again every %s s", safe_url(self._url), " ".join(str(reason).split()),
                    PROBE_SECONDS)
        threading.Thread(target=self._probe, name="gatehouse-db-probe", daemon=True).start()

    def _probe(self) -> None:
        while True:
            try:
                psycopg.connect(self._url, **settings("probe")).close()
            except psycopg.Error:
                time.sleep(PROBE_SECONDS)
                continue
            self._lost.clear()
            log.warning("PostgreSQL at %s is back: serving again", safe_url(self._url))
            return


class _Reported(psycopg.Connection[Row]):
    """A pooled connection whose failure to connect marks its server lost at once (the pool
    itself would only retry, and keep the caller waiting)."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        try:
            return super().connect(conninfo, **kwargs)
        except psycopg.OperationalError as e:
            Reachability.of(conninfo).lose(e)
            raise


class Database:
    """A pool of connections to a PostgreSQL database whose schema is at this version.
    `what` names the store in every error, as the SQLite stores do."""

    def __init__(self, url: str, what: str, *, max_size: int = 4) -> None:
        self.what = what
        self.url = safe_url(url)
        self._conninfo, self._settings = url, settings(what)
        self._reach = Reachability.of(url)
        open_migrated(url, what).close()
        self._pool = ConnectionPool(
            url, connection_class=_Reported, min_size=1, max_size=max_size, open=False, name=what,
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
        (database errors pass through as they are). While the server is lost, StoreError at
        once; a connection lost here marks it lost."""
        db = self._checkout()
        try:
            with db:
                yield db
        except psycopg.Error as e:
            if db.broken:
                self._reach.lose(e)
            raise
        finally:
            self._pool.putconn(db)

    def _checkout(self) -> Connection:
        """A connection from the pool, waited for in short turns: a server found lost meanwhile
        (by the pool failing to connect) is refused at once, not after the whole timeout."""
        deadline = time.monotonic() + POOL_TIMEOUT_SECONDS
        while True:
            self._reach.check(self.what)
            turn = min(CHECKOUT_TURN_SECONDS, deadline - time.monotonic())
            try:
                return self._pool.getconn(timeout=max(turn, 0.001))
            except PoolTimeout as e:
                if time.monotonic() >= deadline:
                    self._reach.lose(e)
                    raise

    def connect(self) -> Connection:
        """A connection of its own, outside the pool, in autocommit mode: for a long-lived
        user such as the audit writer, which would otherwise hold a pooled one for good."""
        self._reach.check(self.what)
        try:
            return psycopg.connect(self._conninfo, autocommit=True, **self._settings)
        except psycopg.OperationalError as e:
            self._reach.lose(e)
            raise

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        with self.transaction() as db:
            return db.execute(sql, args).fetchall()

    def change(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run one write; how many rows it touched."""
        with self.transaction() as db:
            return db.execute(sql, args).rowcount

    def close(self) -> None:
        self._pool.close()
