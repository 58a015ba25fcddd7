"""Approval holds under load: release latency, memory per held call, pending store throughput.

    .venv/bin/python -m tests.bench.bench_approvals [--calls 200] [--held 10000]
        [--released 100] [--window 50] [--pending-items 2000] [--pending-backlog 20000]

    quick (about 20 s): .venv/bin/python -m tests.bench.bench_approvals --calls 50 --held 1000 \
        --released 20 --pending-items 300 --pending-backlog 1000

The upstream runs in a process of its own (this module with `--upstream PORT`) and writes, for
every request it receives, `time.monotonic()` and the path to its stdout; CLOCK_MONOTONIC is one
clock for every process on the machine, so the bench compares it with its own `time.monotonic()`.
Every gateway is a real `gatehouse run` subprocess (tests.e2e.gatehouse) with a policy whose
only rule is `require_approval`, tier 1, and a long `hold_seconds`.

1. Release latency, on a fresh gateway: `--calls` agent connections each send a distinct POST
   that is held; a reviewer approves them one by one (POST /v1/pending/{id}/approve on a kept-
   alive connection) and the bench times approve-returned -> upstream-received (the target),
   approve-sent -> upstream-received, and approve-returned -> the agent's 200.
2. Memory, on another fresh gateway: `--held` agent connections (raw asyncio, plain-HTTP proxy
   requests with Proxy-Authorization) each hold a distinct call; VmRSS of the gateway process
   (/proc/PID/status) before and after gives bytes per held call. With all of them held, the
   release latency is measured again on `--released` of them, and the admin API is timed.
   Connections are opened in a closed loop (`--window`: at most that many sent calls not yet
   held), so the ramp measures the gateway's hold rate rather than TCP's SYN retry back-off when
   the proxy's accept queue (backlog 100) overflows; `--window 0` opens them as fast as it can.
3. Pending store operations per second: tests.bench.bench_pending in a subprocess.

RLIMIT_NOFILE is raised towards `--held` + 1024 (up to the hard limit; the gateway inherits it);
with a lower hard limit, fewer calls are held and the report says so. Which ids belong to which
request, and how many are held, is read from the gateway's state database (read-only queries),
because `GET /v1/pending` lists at most 100 items.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.bench_proxy import wait_port
from tests.e2e.gatehouse import Gatehouse, free_port

POLICY = """\
version: 1
policy: bench-approvals
revision: "1"
default: deny
egress:
  allow: [bench.example]
actions:
  - type: items.write
    match: {{ method: POST, host: bench.example }}
    tags: [write]
rules:
  - id: writes-need-review
    when: {{ action: items.write }}
    decision: require_approval
    tier: 1
    reason: bench writes are reviewed
approvals:
  hold_seconds: {hold_seconds}
  expire_after: 4h
  tiers:
    1: {{ approvals: 1 }}
"""
AGENT, REVIEWER = "bench-agent", "rex"
TARGET_P99_MS = 20.0
TARGET_RSS = 1 << 30
TARGET_HELD = 10_000
IO_TIMEOUT = 30.0  # any single connect, approve call or upstream arrival


# --- the upstream (its own process) -------------------------------------------------------------

async def _upstream_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    answer = b'{"ok":true}'
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(answer)).encode() + b"\r\n\r\n" + answer)
    try:
        while True:  # one request per turn until the peer closes
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.monotonic()
            path = head.split(b" ", 2)[1].decode("latin-1")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            sys.stdout.write(f"{arrived:.9f} {path}\n")
            sys.stdout.flush()
            writer.write(response)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _serve_upstream(port: int) -> None:
    server = await asyncio.start_server(_upstream_conn, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


class Arrivals:
    """What the upstream received: path -> its time.monotonic(), read from its stdout."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.times: dict[str, float] = {}
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:  # ends when the upstream exits
            stamp, _, path = line.decode().strip().partition(" ")
            self.times[path] = float(stamp)

    async def wait(self, path: str, timeout: float = IO_TIMEOUT) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (stamp := self.times.get(path)) is not None:
                return stamp
            await asyncio.sleep(0.0005)
        return None


# --- raw HTTP/1.1 clients ----------------------------------------------------------------------

async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    for _ in range(1_000_000):  # bounded: a chunked body of at most a million chunks
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            break
        body += chunk[:-2]
    return status, body


def agent_request(path: str, auth: str, n: int) -> bytes:
    body = json.dumps({"n": n, "note": "held by the approvals benchmark"}).encode()
    head = (f"POST http://bench.example{path} HTTP/1.1\r\nHost: bench.example\r\n"
            f"Proxy-Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


@dataclass
class Agent:
    path: str
    request: bytes
    connected: bool = False
    status: int | None = None
    answered_at: float | None = None
    error: str | None = None


async def run_agent(agent: Agent, port: int, opening: asyncio.Semaphore,
                    hold_timeout: float) -> None:
    """Open, send, and wait for the one answer; closing is the caller's cancellation."""
    writer = None
    try:
        async with opening:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), IO_TIMEOUT)
            writer.write(agent.request)
            await writer.drain()
            agent.connected = True
        agent.status, _ = await asyncio.wait_for(read_response(reader), hold_timeout)
        agent.answered_at = time.monotonic()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
        agent.error = f"{type(e).__name__}: {e}"
    finally:
        if writer is not None:
            writer.close()


class Reviewer:
    """One kept-alive admin API connection, as a review console would hold it."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for attempt in range(2):  # a kept-alive connection the server closed: one reopen
            if self._conn is None:
                self._conn = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), IO_TIMEOUT)
            reader, writer = self._conn
            try:
                writer.write(request)
                return await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


# --- the gateway under test --------------------------------------------------------------------

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes), Threads, open fds, CPU seconds x 1000 of a process."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            values[key] = int(value)
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    values["cpu_ms"] = (int(stat[11]) + int(stat[12])) * 1000 // os.sysconf("SC_CLK_TCK")
    return values


def nofile_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return " / ".join(line.split()[3:5])
    return "?"


def pending_ids(state: Path, prefix: str) -> dict[str, str]:
    """path -> pending id of the PENDING items whose path starts with `prefix` (read-only)."""
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT id, request FROM pending_items WHERE state = 'pending'"
                          ).fetchall()
    finally:
        db.close()
    found = {}
    for item_id, request in rows:
        path = json.loads(request)["path"]
        if isinstance(path, str) and path.startswith(prefix):
            found[path] = item_id
    return found


class HeldCounter:
    """How many items are PENDING in the gateway's state database, polled every 20 ms."""

    def __init__(self, state: Path) -> None:
        self._db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10,
                                   check_same_thread=False)
        self._lock = threading.Lock()  # one connection, used from worker threads: one at a time
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    def _query(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM pending_items WHERE state = 'pending'"
                                    ).fetchone()[0]

    async def refresh(self) -> int:
        self.count = await asyncio.to_thread(self._query)
        return self.count

    async def _poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.refresh()
            await asyncio.sleep(0.02)

    def start(self, seconds: float) -> None:
        self._task = asyncio.create_task(self._poll(seconds))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with self._lock:
            self._db.close()


async def open_agents(agents: list[Agent], port: int, opening: asyncio.Semaphore,
                      hold_timeout: float, counter: HeldCounter, window: int,
                      tasks: list[asyncio.Task[None]]) -> None:
    """One task per agent; with `window`, at most that many sent calls not yet held at a time
    (a closed loop: the gateway's hold rate is measured, not TCP's SYN retry back-off)."""
    base = counter.count
    for opened, agent in enumerate(agents):
        if window:
            stalled_since = time.monotonic()
            while opened - (counter.count - base) >= window and \
                    time.monotonic() - stalled_since < IO_TIMEOUT:
                await asyncio.sleep(0.002)
        tasks.append(asyncio.create_task(run_agent(agent, port, opening, hold_timeout)))


async def wait_held(counter: HeldCounter, target: int, agents: list[Agent], deadline_s: float,
                    stall_s: float = 60.0) -> float:
    """Until `target` items are pending (or no progress for `stall_s`, or the deadline)."""
    started = time.monotonic()
    deadline = started + deadline_s
    last, last_change = -1, started
    while time.monotonic() < deadline:
        count = counter.count
        if count >= target:
            break
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            break
        if sum(a.error is not None or a.status is not None for a in agents) >= len(agents):
            break  # every agent already has an answer or an error: nothing more will be held
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def listen_overflows() -> int:
    """TcpExt ListenOverflows, machine-wide: SYNs dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=False))
                       .get("ListenOverflows", 0))
    return 0


def start_gateway(tmp: Path, name: str, up_port: int, hold_seconds: int
                  ) -> tuple[Gatehouse, str, str]:
    (tmp / f"{name}.yaml").write_text(POLICY.format(hold_seconds=hold_seconds))
    gh = Gatehouse(tmp / name, tmp / f"{name}.yaml",
                   extra=["--connect-to", f"bench.example:80=127.0.0.1:{up_port}"])
    agent_token = gh.token("--agent", AGENT)
    reviewer_token = gh.token("--reviewer", REVIEWER, "--role", "reviewer")
    gh.start()
    return gh, agent_token, reviewer_token


def stop_gateway(gh: Gatehouse, grace: float = 60.0) -> tuple[float, bool]:
    """SIGINT, then SIGKILL after `grace` s: (seconds to exit, whether it exited by itself)."""
    assert gh.process is not None
    if gh.process.poll() is not None:
        return 0.0, True
    started = time.monotonic()
    gh.process.send_signal(signal.SIGINT)
    try:
        gh.process.wait(grace)
        return time.monotonic() - started, True
    except subprocess.TimeoutExpired:
        gh.process.kill()
        gh.process.wait()
        return time.monotonic() - started, False


# --- measurements ------------------------------------------------------------------------------

@dataclass
class Release:
    approve_ms: list[float] = field(default_factory=list)  # approve call round trip
    returned_to_upstream_ms: list[float] = field(default_factory=list)  # the target
    sent_to_upstream_ms: list[float] = field(default_factory=list)
    returned_to_agent_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def release_one_by_one(reviewer: Reviewer, arrivals: Arrivals, agents: list[Agent],
                             ids: dict[str, str]) -> Release:
    result = Release()
    for agent in agents:
        item_id = ids.get(agent.path)
        if item_id is None:
            result.failures.append(f"{agent.path}: not held")
            continue
        sent = time.monotonic()
        status, body = await reviewer.call("POST", f"/v1/pending/{item_id}/approve", b"{}")
        returned = time.monotonic()
        if status != 200:
            result.failures.append(f"{item_id}: approve answered {status} {body[:200]!r}")
            continue
        arrived = await arrivals.wait(agent.path)
        if arrived is None:
            result.failures.append(f"{item_id}: never reached the upstream")
            continue
        answer_deadline = time.monotonic() + IO_TIMEOUT
        while agent.answered_at is None and agent.error is None and \
                time.monotonic() < answer_deadline:
            await asyncio.sleep(0.0005)
        result.approve_ms.append((returned - sent) * 1000)
        result.returned_to_upstream_ms.append((arrived - returned) * 1000)
        result.sent_to_upstream_ms.append((arrived - sent) * 1000)
        if agent.answered_at is not None and agent.status == 200:
            result.returned_to_agent_ms.append((agent.answered_at - returned) * 1000)
        else:
            result.failures.append(f"{item_id}: the agent got {agent.status} {agent.error}")
    return result


def percentile(values: list[float], p: float) -> float:
    """As tests.bench.load: the value at rank int(p% of n) of the sorted list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def print_release(title: str, release: Release) -> None:
    print(f"\n{title}")
    rows = [("approve returned -> upstream received", release.returned_to_upstream_ms),
            ("approve sent -> upstream received", release.sent_to_upstream_ms),
            ("approve call round trip", release.approve_ms),
            ("approve returned -> agent got its 200", release.returned_to_agent_ms)]
    for name, values in rows:
        if values:
            print(f"  {name:<40} p50 {percentile(values, 50):7.2f} ms   "
                  f"p99 {percentile(values, 99):7.2f} ms   max {max(values):7.2f} ms   "
                  f"n={len(values)}")
        else:
            print(f"  {name:<40} no samples")
    for failure in release.failures[:10]:
        print(f"  FAILED {failure}")
    if len(release.failures) > 10:
        print(f"  ... and {len(release.failures) - 10} more failures")


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def make_agents(prefix: str, count: int, auth: str) -> list[Agent]:
    return [Agent(f"{prefix}{i}", agent_request(f"{prefix}{i}", auth, i)) for i in range(count)]


async def hold_and_release(gh: Gatehouse, reviewer: Reviewer, arrivals: Arrivals,
                           counter: HeldCounter, agents: list[Agent], prefix: str,
                           opening: asyncio.Semaphore, hold_seconds: int, window: int,
                           tasks: list[asyncio.Task[None]]) -> Release:
    """Hold every agent's call, then approve them one by one."""
    target = await counter.refresh() + len(agents)
    await open_agents(agents, gh.proxy_port, opening, hold_seconds + 30, counter, window, tasks)
    await wait_held(counter, target, agents, deadline_s=120)
    ids = await asyncio.to_thread(pending_ids, gh.state, prefix)
    return await release_one_by_one(reviewer, arrivals, agents, ids)


async def phase_release(tmp: Path, up_port: int, arrivals: Arrivals, calls: int,
                        hold_seconds: int, window: int) -> Release:
    gh, agent_token, reviewer_token = start_gateway(tmp, "release", up_port, hold_seconds)
    tasks: list[asyncio.Task[None]] = []
    reviewer = Reviewer(gh.admin_port, reviewer_token)
    counter = HeldCounter(gh.state)
    counter.start(hold_seconds)
    try:
        auth = base64.b64encode(f"{AGENT}:{agent_token}".encode()).decode()
        run = uuid.uuid4().hex[:8]
        opening = asyncio.Semaphore(64)
        # warm-up: a few calls held and released, so lazy imports and caches are not measured
        await hold_and_release(gh, reviewer, arrivals, counter,
                               make_agents(f"/warm/{run}/", 5, auth), f"/warm/{run}/", opening,
                               hold_seconds, window, tasks)
        prefix = f"/release/{run}/"
        release = await hold_and_release(gh, reviewer, arrivals, counter,
                                         make_agents(prefix, calls, auth), prefix, opening,
                                         hold_seconds, window, tasks)
        print(f"  {len(release.approve_ms)} of {calls} released", flush=True)
        return release
    finally:
        reviewer.close()
        await counter.stop()
        await cancel_all(tasks)
        stop_gateway(gh)


@dataclass
class MemoryResult:
    requested: int
    held: int
    hold_seconds_taken: float
    before: dict[str, int]
    after: dict[str, int]
    after_disconnect: dict[str, int] | None
    connect_errors: int
    early_answers: dict[str, int]
    release: Release
    healthz_ms: list[float]
    list_ms: float
    listed: int
    shutdown_s: float
    shutdown_clean: bool
    nofile: str
    still_pending_after_disconnect: int | None
    overflows: int
    window: int


async def phase_memory(tmp: Path, up_port: int, arrivals: Arrivals, held: int, released: int,
                       hold_seconds: int, connect_concurrency: int, window: int
                       ) -> MemoryResult:
    gh, agent_token, reviewer_token = start_gateway(tmp, "memory", up_port, hold_seconds)
    tasks: list[asyncio.Task[None]] = []
    reviewer = Reviewer(gh.admin_port, reviewer_token)
    result: MemoryResult | None = None
    counter = HeldCounter(gh.state)
    counter.start(hold_seconds)
    try:
        assert gh.process is not None
        pid = gh.process.pid
        nofile = nofile_limit(pid)
        auth = base64.b64encode(f"{AGENT}:{agent_token}".encode()).decode()
        run = uuid.uuid4().hex[:8]
        opening = asyncio.Semaphore(connect_concurrency)
        await hold_and_release(gh, reviewer, arrivals, counter,
                               make_agents(f"/warm/{run}/", 20, auth), f"/warm/{run}/", opening,
                               hold_seconds, window, tasks)
        await asyncio.sleep(2)
        before = proc_status(pid)

        prefix = f"/held/{run}/"
        agents = make_agents(prefix, held, auth)
        print(f"  opening {held:,} agent connections ({connect_concurrency} connecting at a "
              f"time, {'at most ' + str(window) if window else 'any number of'} sent calls not "
              "yet held) ...", flush=True)
        overflows = listen_overflows()
        target = await counter.refresh() + held
        started = time.monotonic()
        held_tasks: list[asyncio.Task[None]] = []
        await open_agents(agents, gh.proxy_port, opening, hold_seconds + 30, counter, window,
                          held_tasks)
        tasks += held_tasks
        await wait_held(counter, target, agents, deadline_s=min(600.0, hold_seconds / 2))
        took = time.monotonic() - started
        overflows = listen_overflows() - overflows
        ids = await asyncio.to_thread(pending_ids, gh.state, prefix)
        print(f"  {len(ids):,} of {held:,} held after {took:.1f} s", flush=True)
        await asyncio.sleep(2)
        after = proc_status(pid)
        connect_errors = sum(not a.connected for a in agents)
        early: dict[str, int] = {}
        for agent in agents:
            if agent.connected and (agent.status is not None or agent.error is not None):
                key = str(agent.status) if agent.status is not None else \
                    (agent.error or "").split(":")[0]
                early[key] = early.get(key, 0) + 1

        # the admin API and the release path with everything held
        healthz = []
        for _ in range(20):
            started = time.monotonic()
            await reviewer.call("GET", "/healthz")
            healthz.append((time.monotonic() - started) * 1000)
        started = time.monotonic()
        status, body = await reviewer.call("GET", "/v1/pending")
        list_ms = (time.monotonic() - started) * 1000
        listed = len(json.loads(body)["items"]) if status == 200 else -1
        step = max(1, len(agents) // max(released, 1))
        chosen = [a for a in agents[::step] if a.path in ids][:released]
        release = await release_one_by_one(reviewer, arrivals, chosen, ids)

        # the agents hang up: what the gateway keeps of their held calls
        await cancel_all(held_tasks)
        await asyncio.sleep(5)
        after_disconnect = proc_status(pid)
        still = len(await asyncio.to_thread(pending_ids, gh.state, prefix))
        result = MemoryResult(
            requested=held, held=len(ids), hold_seconds_taken=took, before=before, after=after,
            after_disconnect=after_disconnect, connect_errors=connect_errors,
            early_answers=early, release=release, healthz_ms=healthz, list_ms=list_ms,
            listed=listed, shutdown_s=0.0, shutdown_clean=True, nofile=nofile,
            still_pending_after_disconnect=still, overflows=overflows, window=window)
        return result
    finally:
        reviewer.close()
        await counter.stop()
        await cancel_all(tasks)
        seconds, clean = stop_gateway(gh)
        if result is not None:
            result.shutdown_s, result.shutdown_clean = seconds, clean
        print(f"  gateway stopped {seconds:.1f} s after SIGINT"
              f"{'' if clean else ' (did not exit: killed)'}; log: {gh.log}", flush=True)


def phase_store(items: int, backlog: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "tests.bench.bench_pending", "--items",
                          str(items), "--backlog", str(backlog)], capture_output=True,
                         text=True, timeout=900, check=True).stdout
    rates = {}
    for line in out.splitlines():
        if m := re.match(r"(\w+):\s+([\d,]+) ops/s", line):
            rates[m.group(1)] = float(m.group(2).replace(",", ""))
    return rates


def raise_nofile(wanted: int) -> tuple[int, int, int]:
    """Soft limit up to `wanted` (at most the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if new != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return soft, new, hard


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200,
                        help="held calls approved one by one on an idle gateway")
    parser.add_argument("--held", type=int, default=TARGET_HELD,
                        help="agent connections held at once for the memory measurement")
    parser.add_argument("--released", type=int, default=100,
                        help="of those, how many to approve one by one while all are held")
    parser.add_argument("--hold-seconds", type=int, default=1800)
    parser.add_argument("--connect-concurrency", type=int, default=64)
    parser.add_argument("--window", type=int, default=50,
                        help="most calls sent but not yet held at a time (0: no limit)")
    parser.add_argument("--pending-items", type=int, default=2000)
    parser.add_argument("--pending-backlog", type=int, default=20000)
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_upstream(args.upstream))
        return

    # the bench holds one socket per agent, the gateway one per agent (upstream dials are lazy)
    soft, nofile, hard = raise_nofile(args.held + 1024)
    held = args.held
    if nofile < held + 1024:
        held = max(0, nofile - 1024)
        print(f"NOTE: RLIMIT_NOFILE hard limit is {hard}; holding {held:,} calls, not "
              f"{args.held:,}")
    print(f"RLIMIT_NOFILE: soft {soft} -> {nofile} (hard {hard}); children inherit it")

    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-approvals-"))
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_approvals",
                                 "--upstream", str(up_port)], stdout=subprocess.PIPE)
    try:
        wait_port(up_port, upstream)
        arrivals = Arrivals(upstream)
        print(f"\n[1/3] release latency: {args.calls} held calls, approved one by one",
              flush=True)
        release = asyncio.run(phase_release(tmp, up_port, arrivals, args.calls,
                                            args.hold_seconds, args.window))
        print(f"\n[2/3] memory: {held:,} calls held at once", flush=True)
        memory = asyncio.run(phase_memory(tmp, up_port, arrivals, held, args.released,
                                          args.hold_seconds, args.connect_concurrency,
                                          args.window))
        store: dict[str, float] = {}
        if not args.skip_store:
            print(f"\n[3/3] pending store: tests.bench.bench_pending --items "
                  f"{args.pending_items} --backlog {args.pending_backlog}", flush=True)
            store = phase_store(args.pending_items, args.pending_backlog)
    finally:
        upstream.terminate()
        upstream.wait()

    print("\n" + "=" * 100)
    print_release(f"release latency, idle gateway ({args.calls} held calls approved one by one)",
                  release)
    approved = len(memory.release.approve_ms)
    print_release(f"release latency with {memory.held:,} calls held ({approved} of them "
                  "approved one by one)", memory.release)

    growth = memory.after["VmRSS"] - memory.before["VmRSS"]
    per_call = growth / memory.held if memory.held else float("nan")
    at_target = memory.before["VmRSS"] + per_call * TARGET_HELD
    print(f"\nmemory of the gateway process (VmRSS), {memory.held:,} of {memory.requested:,} "
          f"calls held")
    print(f"  {'before (idle, after warm-up)':<40} {mib(memory.before['VmRSS']):>14}   "
          f"fds {memory.before['fds']:>6}   threads {memory.before['Threads']}")
    print(f"  {'with every call held':<40} {mib(memory.after['VmRSS']):>14}   "
          f"fds {memory.after['fds']:>6}   threads {memory.after['Threads']}   "
          f"(VmHWM {mib(memory.after['VmHWM'])})")
    if memory.after_disconnect:
        print(f"  {'5 s after every agent hung up':<40} "
              f"{mib(memory.after_disconnect['VmRSS']):>14}   "
              f"fds {memory.after_disconnect['fds']:>6}   "
              f"(items still pending: {memory.still_pending_after_disconnect:,})")
    print(f"  {'growth / per held call':<40} {mib(growth):>14}   {per_call:,.0f} bytes per call")
    cpu = memory.after["cpu_ms"] - memory.before["cpu_ms"]
    print(f"  time to hold them all: {memory.hold_seconds_taken:.1f} s "
          f"({memory.held / max(memory.hold_seconds_taken, 1e-9):,.0f} held/s), gateway CPU "
          f"{cpu / 1000:.1f} s ({cpu / max(memory.held, 1):.2f} ms per held call)")
    print(f"  SYNs dropped on full accept queues meanwhile (TcpExt ListenOverflows, machine-"
          f"wide): {memory.overflows:,}; window {memory.window or 'none'}")
    print(f"  connect errors {memory.connect_errors}, answered before release "
          f"{memory.early_answers or 'none'}; gateway RLIMIT_NOFILE {memory.nofile}")
    print(f"  gateway exit after SIGINT: {memory.shutdown_s:.1f} s"
          f"{'' if memory.shutdown_clean else ' (did not exit within 60 s: killed)'}")
    print(f"  admin API with all held: GET /healthz p50 {percentile(memory.healthz_ms, 50):.2f} "
          f"ms, max {max(memory.healthz_ms):.2f} ms; GET /v1/pending {memory.list_ms:.1f} ms "
          f"returned {memory.listed} of {memory.held:,} pending items")

    if store:
        print(f"\npending store ({args.pending_items:,} items over a backlog of "
              f"{args.pending_backlog:,}; tests.bench.bench_pending)")
        for name, per_second in store.items():
            print(f"  {name + ':':<15}{per_second:>10,.0f} ops/s")

    p99 = percentile(release.returned_to_upstream_ms, 99)
    p99_loaded = percentile(memory.release.returned_to_upstream_ms, 99)
    extrapolated = "" if memory.held >= TARGET_HELD else \
        f" (extrapolated from {memory.held:,} held)"
    total = memory.after["VmRSS"] if memory.held >= TARGET_HELD else at_target
    complete = memory.held == memory.requested and not release.failures
    print("\ntargets")
    print(f"  release p99 < {TARGET_P99_MS:.0f} ms (idle): {p99:.2f} ms: "
          f"{'met' if p99 < TARGET_P99_MS else 'MISSED'}")
    print(f"  release p99 < {TARGET_P99_MS:.0f} ms ({memory.held:,} held): {p99_loaded:.2f} ms: "
          f"{'met' if p99_loaded < TARGET_P99_MS else 'MISSED'}")
    print(f"  RSS < 1 GiB with {TARGET_HELD:,} held: {mib(total)}{extrapolated}: "
          f"{'met' if total < TARGET_RSS else 'MISSED'}")
    if not complete:
        print(f"  NOTE: incomplete run: {memory.held:,} of {memory.requested:,} held, "
              f"{len(release.failures)} release failures")
    print(f"\nstate and gateway logs: {tmp}")


if __name__ == "__main__":
    main()
