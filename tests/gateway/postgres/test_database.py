"""Opening PostgreSQL state: the schema is migrated once even when replicas start together, a
server that cannot be reached is named plainly, and a pool outlives a dropped connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest

from gateway.postgres.database import Database, safe_url
from gateway.postgres.grants import PostgresGrantStore
from gateway.postgres.incidents import PostgresIncidentStore
from gateway.postgres.migrations import MIGRATIONS, migrate
from gateway.postgres.pending import PostgresPendingStore
from gateway.postgres.quarantine import PostgresQuarantineStore
from gateway.postgres.state import PostgresStateStore
from gateway.store import StoreError
from tests.gateway.postgres.places import connect, schema_fixture

url = schema_fixture()


def ledger(url: str) -> list[tuple[object, ...]]:
    with connect(url) as db:
        return db.execute("SELECT version, name, applied_at FROM schema_migrations "
                          "ORDER BY version").fetchall()


def test_steps_are_numbered_one_by_one() -> None:
    assert [step.version for step in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_the_first_open_migrates_and_a_second_open_changes_nothing(url: str) -> None:
    Database(url, "state store").close()
    first = ledger(url)
    assert [(v, n) for v, n, _ in first] == [(s.version, s.name) for s in MIGRATIONS]
    Database(url, "state store").close()
    assert ledger(url) == first  # not applied again: same rows, same times
    with connect(url) as db:
        assert migrate(db) == []


def test_replicas_opening_together_migrate_once(url: str) -> None:
    """Without the advisory lock, racing CREATE TABLEs fail or steps are recorded twice."""
    gate = threading.Barrier(6)
    outcomes: list[object] = []

    def start_replica() -> None:
        gate.wait()
        try:
            Database(url, "state store").close()
            outcomes.append("open")
        except Exception as e:  # noqa: BLE001 - the outcome under test
            outcomes.append(e)

    threads = [threading.Thread(target=start_replica) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["open"] * 6
    assert [v for v, _, _ in ledger(url)] == [s.version for s in MIGRATIONS]


def test_a_step_that_fails_leaves_the_schema_as_it_was(url: str) -> None:
    with connect(url) as db:
        db.execute("CREATE TABLE quarantine (id text)")  # in the way of the last step
    with pytest.raises(StoreError, match='cannot open the quarantine .*"quarantine" already'):
        Database(url, "quarantine")
    with connect(url) as db:
        tables = db.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = current_schema()").fetchall()
    assert tables == [("quarantine",)]  # no step applied, no ledger either


def test_a_schema_from_a_newer_gatehouse_is_refused(url: str) -> None:
    Database(url, "state store").close()
    with connect(url) as db:
        db.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    with pytest.raises(StoreError, match="schema is at version 999, newer than"):
        Database(url, "state store")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("store", "what"), [
    (PostgresStateStore, "state store"), (PostgresPendingStore, "pending store"),
    (PostgresGrantStore, "grants"), (PostgresQuarantineStore, "quarantine"),
    (PostgresIncidentStore, "incident store")])
def test_an_unreachable_server_is_named_without_its_password(
        store: Callable[[str], object], what: str) -> None:
    port = free_port()
    with pytest.raises(StoreError) as refused:
        store(f"postgresql://gatehouse:hunter2@127.0.0.1:{port}/gatehouse")
    message = str(refused.value)
    assert message.startswith(f"cannot open the {what}: PostgreSQL at "
                              f"`postgresql://gatehouse@127.0.0.1:{port}/gatehouse`")
    assert "refused" in message and "check that the server runs" in message
    assert "hunter2" not in message


def test_a_missing_database_says_to_create_it(url: str) -> None:
    missing = url.replace("/gatehouse_test_", "/no_such_gatehouse_test_")
    with pytest.raises(StoreError, match='does not exist.*createdb'):
        Database(missing, "grants")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://bob:s3cret@db:5433/gh?sslmode=require", "postgresql://bob@db:5433/gh?"
                                                           "sslmode=require"),
    ("postgresql://db/gh?password=s3cret&application_name=x", "postgresql://db/gh?"
                                                              "application_name=x"),
    ("postgres://bob@db/gh", "postgres://bob@db/gh"),
])
def test_urls_in_messages_carry_no_password(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_only_postgresql_urls_are_taken() -> None:
    with pytest.raises(StoreError, match="`mysql://db/gh` is not a postgresql:// URL"):
        Database("mysql://db/gh", "state store")


def test_the_pool_reconnects_after_the_server_dropped_its_connections(url: str) -> None:
    database = Database(url, "state store")
    with connect(url) as db:
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE application_name = 'gatehouse state store' "
                   "AND datname = current_database()")
    assert database.rows("SELECT 1") == [(1,)]
    database.close()
    with pytest.raises(StoreError, match="state store: .*closed"):
        database.rows("SELECT 1")
