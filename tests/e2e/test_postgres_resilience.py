"""Losing the database under a real gateway on `--store postgresql://...`: calls that need state
are refused 503 `gateway_error` (nothing is forwarded without its audit record), held calls stay
pending, and service resumes by itself when the database is back. And `kill -9` of a replica
holding a call leaves the item pending for the agent's retry through another replica.

The gateway logs in as a role of its own, so a test can shut it out of the shared server
(`ALTER ROLE ... NOLOGIN` and `pg_terminate_backend` of its connections) without touching any
other client of that server: to the gateway this is the database gone, as a crash or a network
cut would make it, and `LOGIN` brings it back.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from psycopg import sql

from tests.e2e.conftest import Running
from tests.e2e.gatehouse import Gatehouse
from tests.e2e.test_postgres_replicas import start_replicas
from tests.e2e.test_postgres_store import agent, held_item, start_on_postgres
from tests.e2e.upstream import Upstream
from tests.gateway.postgres.places import (
    SERVER,
    connect,
    run_database,
    schema_fixture,
    with_database,
)

RESUME_SECONDS = 15.0  # the pool and the audit writer reconnect within this once it is back


class Role:
    """A login role owning a schema of this run's database: the gateway's way in."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.name = "gh_" + secrets.token_hex(6)
        self.database = run_database(request)
        self.admin = with_database(SERVER, self.database)
        with connect(self.admin) as db:
            db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(self.name)))
            db.execute(sql.SQL("CREATE SCHEMA {0} AUTHORIZATION {0}").format(
                sql.Identifier(self.name)))
        # the role's own name is its schema's: first on its default search path
        self.url = with_database(SERVER, self.database).replace(
            "://postgres@", f"://{self.name}@")

    def shut_out(self) -> None:
        """The database is gone for this role: no new connection, every open one cut."""
        with connect(self.admin) as db:
            db.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(self.name)))
        self.cut()

    def cut(self) -> int:
        """Terminate the role's connections; how many there were."""
        with connect(self.admin) as db:
            return len(db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE usename = %s", (self.name,)).fetchall())

    def wait_listening(self) -> None:
        """Until the gateway's listener is connected again, and has woken the held calls as it
        does after every reconnect (a wake-up from an earlier cut would answer a call held
        now)."""
        deadline = time.monotonic() + RESUME_SECONDS
        while not self.rows("SELECT 1 FROM pg_stat_activity WHERE usename = %s "
                            "AND application_name = 'gatehouse listener'", (self.name,)):
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.1)
        time.sleep(0.5)

    def let_in(self) -> None:
        with connect(self.admin) as db:
            db.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(self.name)))

    def rows(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Read the role's schema as the server's superuser, behind the gateway's back."""
        with connect(self.admin) as db:
            db.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(self.name)))
            return db.execute(query, args).fetchall()

    def drop(self) -> None:
        self.let_in()
        self.cut()
        with connect(self.admin) as db:
            db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.name)))
            db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(self.name)))


@pytest.fixture(scope="module")
def role(request: pytest.FixtureRequest) -> Iterator[Role]:
    made = Role(request)
    yield made
    made.drop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
            role: Role) -> Iterator[Running]:
    running = start_on_postgres(tmp_path_factory.mktemp("resilience"), upstream, role.url)
    yield running
    running.gh.stop()


def get(client: httpx.Client, url: str) -> str:
    """What became of a call: `forwarded`, the refusal's type, or `refused` for a CONNECT the
    gateway refused 503 (a new connection's identity could not be looked up)."""
    try:
        response = client.get(url)
    except httpx.ProxyError as e:
        assert str(e) == "503 Service Unavailable", e
        return "refused"
    return "forwarded" if response.status_code == 200 else str(response.json()["error"]["type"])


def forwarded_without_record(role: Role, upstream: Upstream, marker: str) -> list[str]:
    """Paths with `marker` the upstream received that no record of a call let through names."""
    recorded = {str(url).removeprefix("https://api.github.com") for (url,) in role.rows(
        "SELECT record::json ->> 'url' FROM audit WHERE event = 'call.decided' "
        "AND decision IN ('allow', 'approved')")}
    return [r["path"] for r in upstream.received
            if marker in str(r["path"]) and r["path"] not in recorded]


def wait_until_served(client: httpx.Client, marker: str) -> float:
    """Seconds until a call is forwarded again."""
    start = time.monotonic()
    while get(client, f"https://api.github.com/{marker}/back") != "forwarded":
        assert time.monotonic() - start < RESUME_SECONDS, "service did not resume by itself"
        time.sleep(0.1)
    return time.monotonic() - start


def test_connections_cut_under_load_refuse_calls_and_forward_none_without_its_record(
        gateway: Running, role: Role, upstream: Upstream) -> None:
    marker, stop = uuid.uuid4().hex, threading.Event()
    seen: dict[str, str] = {}

    def load(worker: int) -> None:
        with agent(gateway) as client:
            n = 0
            while not stop.is_set():
                path = f"/{marker}/{worker}/{n}"
                seen[path] = get(client, f"https://api.github.com{path}")
                n += 1

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(load, w) for w in range(2)]
        cuts = 0
        for _ in range(15):
            time.sleep(0.3)
            cuts += role.cut()
        stop.set()
        for worker in workers:
            worker.result()
    outcomes = set(seen.values())
    assert outcomes <= {"forwarded", "gateway_error", "refused"}, outcomes
    assert cuts >= 15 and "forwarded" in outcomes
    assert forwarded_without_record(role, upstream, marker) == []
    refused = {path for path, what in seen.items() if what != "forwarded"}
    assert not refused & {r["path"] for r in upstream.received}
    with agent(gateway) as client:
        wait_until_served(client, marker)


def test_a_lost_database_refuses_calls_keeps_held_ones_pending_and_service_comes_back(
        gateway: Running, role: Role, upstream: Upstream) -> None:
    marker = uuid.uuid4().hex
    write = f"https://api.github.com/repos/{marker}/issues"
    role.wait_listening()
    with agent(gateway) as client, concurrent.futures.ThreadPoolExecutor() as pool:
        held = pool.submit(client.post, write, json={"title": "bug"})
        item = held_item(gateway, marker)
        role.shut_out()
        try:
            start = time.monotonic()
            assert get(client, f"https://api.github.com/{marker}/during") in ("gateway_error",
                                                                               "refused")
            assert time.monotonic() - start < 2, "a refusal must not wait on the database"
            vote = gateway.gh.admin_call("POST", f"/v1/pending/{item['id']}/approve",
                                         gateway.people["reviewer"], json={"reason": "ok"})
            assert vote.status_code >= 500, vote.text  # refused: nothing was recorded
            time.sleep(2)  # the outage lasts
            assert not held.done(), "the held call was answered while the database was away"
        finally:
            role.let_in()
        took = wait_until_served(client, marker)
        assert role.rows("SELECT state FROM pending_items WHERE id = %s", (item["id"],)) == \
            [("pending",)]
        first = held.result(timeout=30)  # woken when the replica heard the database again
        assert first.json()["error"]["type"] == "approval_pending", first.text
        assert first.json()["error"]["pending_id"] == item["id"]
        approved = gateway.gh.admin_call("POST", f"/v1/pending/{item['id']}/approve",
                                         gateway.people["reviewer"], json={"reason": "ok"})
        assert approved.status_code == 200, approved.text
        retry = client.post(write, json={"title": "bug"})
    assert (retry.status_code, retry.headers["X-Gatehouse-Decision"]) == (200, "approved")
    assert len(upstream.requests_to(f"/repos/{marker}/issues")) == 1
    assert upstream.requests_to(f"/{marker}/during") == []
    assert forwarded_without_record(role, upstream, marker) == []
    assert took < RESUME_SECONDS


url = schema_fixture()


@pytest.fixture
def two_replicas(tmp_path: Path, upstream: Upstream,
                 url: str) -> Iterator[tuple[Running, Gatehouse]]:
    a, b = start_replicas(tmp_path, upstream, url)
    yield a, b
    b.stop()
    a.gh.stop()


def test_kill_9_of_a_replica_holding_a_call_leaves_it_pending_for_the_retry_through_another(
        two_replicas: tuple[Running, Gatehouse], upstream: Upstream, url: str) -> None:
    a, b = two_replicas
    marker = uuid.uuid4().hex
    write = f"https://api.github.com/repos/{marker}/issues"
    with agent(a) as client, concurrent.futures.ThreadPoolExecutor() as pool:
        held = pool.submit(client.post, write, json={"title": "bug"})
        item = held_item(a, marker)
        a.gh.kill()
        with pytest.raises(httpx.HTTPError):  # the agent's connection died with the replica
            held.result(timeout=10)
    with connect(url) as db:
        assert db.execute("SELECT state FROM pending_items WHERE id = %s",
                          (item["id"],)).fetchall() == [("pending",)]
    trust = ssl.create_default_context(cafile=b.ca_bundle)  # each replica has its own CA
    with httpx.Client(proxy=b.proxy_url("ops-bot", a.agents["ops-bot"]), verify=trust,
                      timeout=30) as client, concurrent.futures.ThreadPoolExecutor() as pool:
        retry = pool.submit(client.post, write, json={"title": "bug"})
        time.sleep(1)  # held on B by now
        approved = b.admin_call("POST", f"/v1/pending/{item['id']}/approve",
                                a.people["reviewer"], json={"reason": "ok"})
        assert approved.status_code == 200, approved.text
        response = retry.result(timeout=30)
    assert (response.status_code, response.headers["X-Gatehouse-Decision"]) == (200, "approved")
    assert len(upstream.requests_to(f"/repos/{marker}/issues")) == 1
    with connect(url) as db:  # the retry attached to the item A held: no second one was made
        assert db.execute("SELECT id, state FROM pending_items WHERE request LIKE %s",
                          (f"%{marker}%",)).fetchall() == [(item["id"], "consumed")]
