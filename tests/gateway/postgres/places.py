"""Where a store test keeps its state: an SQLite file, or a throwaway PostgreSQL schema.

A store's test module takes in `where, store = store_fixtures(SQLiteX, PostgresX)`: `where`
is parametrised over `BACKENDS`, so one suite runs against both backends. A test run makes its
own database (a unique name, dropped when the run ends) and each test its own schema in it, so
runs side by side never see each other's rows. The server is `$GATEHOUSE_TEST_POSTGRES`, by
default the one on 127.0.0.1:5432; when it is unreachable, a PostgreSQL test skips on a
developer's machine and fails in CI.

The audit trail is not one store among others (it needs the state directory for its signing
key, and its tests tamper with it): its suites take in `where = trail_fixture()`, a `TrailPlace`.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql

from gateway.audit import HEAD_SIZE, AuditLog, SQLiteTrail, Trail, head_path
from gateway.checkpoints import Conn
from gateway.postgres.audit import PostgresAuditLog, PostgresTrail, Qmark
from tests.conftest import missing

SERVER = os.environ.get("GATEHOUSE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")

T = TypeVar("T")
_run_database: list[str] = []  # this run's database, once made


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection for test set-up and for looking behind a store's back."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        missing(f"PostgreSQL at {urlsplit(url).netloc} is unreachable: {' '.join(str(e).split())}")


def with_database(url: str, name: str, schema: str | None = None) -> str:
    """`url` pointing at database `name`, with `schema` first on the search path."""
    options = f"?options={quote(f'-csearch_path={schema}')}" if schema else ""
    return urlsplit(url)._replace(path=f"/{name}", query="").geturl() + options


def run_database(request: pytest.FixtureRequest) -> str:
    """This run's own database: made at first use, dropped when the run ends."""
    if not _run_database:
        name = f"gatehouse_test_{os.getpid()}_{secrets.token_hex(4)}"
        with connect(SERVER) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        _run_database.append(name)
        request.session.addfinalizer(_drop_run_database)
    return _run_database[0]


def _drop_run_database() -> None:
    with connect(SERVER) as db:  # FORCE: a store a failed test left open must not keep it
        db.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
            sql.Identifier(_run_database.pop())))


@contextmanager
def throwaway_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty schema of this run's database, dropped after the test."""
    name = run_database(request)
    schema = "t_" + secrets.token_hex(6)
    with connect(with_database(SERVER, name)) as db:
        db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield with_database(SERVER, name, schema)
        finally:
            db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def schema_fixture(scope: str = "function") -> Callable[..., Any]:
    """The fixture `url`, a `throwaway_schema`, as a module takes it in: `url = schema_fixture()`
    (or `schema_fixture("module")` for one shared by the module's tests)."""

    @pytest.fixture(scope=scope)
    def url(request: pytest.FixtureRequest) -> Iterator[str]:
        with throwaway_schema(request) as where:
            yield where

    return url


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


@dataclass(frozen=True, slots=True)
class Place(Generic[S]):
    """One test's state, the SQLite file or (with `url`) the PostgreSQL schema, and the two
    backends of the store under test."""

    sqlite: Callable[[Path], S]
    postgresql: Callable[[str], S]
    path: Path
    url: str | None = None

    def open(self) -> S:
        """Open the store here, as a gateway (re)starting on this state would."""
        return self.beside(self.sqlite, self.postgresql)

    def beside(self, sqlite: Callable[[Path], T], postgresql: Callable[[str], T]) -> T:
        """Open another kind of store on the same state."""
        return postgresql(self.url) if self.url else sqlite(self.path)

    def contents(self) -> bytes:
        """Everything stored, as raw as the backend keeps it (to look for what must not be)."""
        if self.url is None:  # the file with its write-ahead log
            return b"".join(f.read_bytes() for f in self.path.parent.glob(f"{self.path.name}*"))
        with connect(self.url) as db:
            tables = db.execute("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = current_schema()").fetchall()
            rows = [db.execute(sql.SQL("SELECT t::text FROM {} AS t").format(
                sql.Identifier(table))).fetchall() for (table,) in tables]
        return repr(rows).encode()


def store_fixtures(sqlite: Callable[[Path], S],
                   postgresql: Callable[[str], S]) -> tuple[Callable[..., Any], ...]:
    """The fixtures `where` (a `Place` on each backend, so every test taking it runs twice)
    and `store` (opened there, closed after the test), which a test module takes in as
    `where, store = store_fixtures(SQLiteX, PostgresX)`."""

    @pytest.fixture(params=BACKENDS)
    def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place[S]]:
        path = tmp_path / "state.db"
        if request.param == "postgresql":
            with throwaway_schema(request) as url:
                yield Place(sqlite, postgresql, path, url)
        else:
            yield Place(sqlite, postgresql, path)

    @pytest.fixture
    def store(where: Place[S]) -> Iterator[S]:
        opened = where.open()
        yield opened
        opened.close()

    return where, store


@dataclass
class TrailPlace:
    """One test's audit trail and state directory: `audit.db` in that directory, or (with `url`)
    a throwaway PostgreSQL schema. The signing key is in the directory either way."""

    directory: Path
    url: str | None = None
    _trail: Trail | None = None

    def open(self, **options: Any) -> AuditLog:
        """Open the log here, as a gateway or a CLI command would."""
        if self.url:
            return PostgresAuditLog(self.url, self.directory, **options)
        return AuditLog(self.directory / "audit.db", **options)

    @property
    def trail(self) -> Trail:
        """The trail as `verify` and `export` read it: opened once, closed after the test."""
        if self._trail is None:
            self._trail = PostgresTrail(self.url, self.directory) if self.url \
                else SQLiteTrail(self.directory / "audit.db")
        return self._trail

    @contextmanager
    def db(self) -> Iterator[Conn]:
        """A raw autocommit connection, as whoever can reach the database would open it, spoken
        to with `?` placeholders on both backends."""
        if self.url:
            with connect(self.url) as db:
                yield Qmark(db)
        else:
            with closing(sqlite3.connect(self.directory / "audit.db", isolation_level=None)) as db:
                yield db

    def head(self) -> tuple[int, str] | str:
        """What the head anchor names, or its problem."""
        with self.trail.connection() as db:
            return self.trail.anchor(db)

    def move_head(self, seq: int, digest: str) -> None:
        """Rewrite the anchor, as an intruder who cut the tail would."""
        if self.url:
            with self.db() as db:
                db.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, digest))
        else:
            head_path(self.directory / "audit.db").write_bytes(
                f'{{"seq":{seq},"hash":"{digest}"}}'.encode().ljust(HEAD_SIZE))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Another process holds the trail's write lock meanwhile."""
        with self.trail.connection() as db:
            self.trail.begin_write(db)
            yield
            db.execute("ROLLBACK")

    def close(self) -> None:
        if self._trail is not None:
            self._trail.close()


def trail_fixture(backends: tuple[str, ...] = BACKENDS) -> Callable[..., Any]:
    """The fixture `where`: a `TrailPlace` on each backend, so every test taking it runs twice
    (or on those named, for what only one backend has)."""

    @pytest.fixture(params=backends)
    def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrailPlace]:
        if request.param == "postgresql":
            with throwaway_schema(request) as url:
                place = TrailPlace(tmp_path, url)
                yield place
                place.close()
        else:
            yield TrailPlace(tmp_path)

    return where
