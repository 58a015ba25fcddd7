"""The scanning benchmark's own parts, cheaply: its bodies, its upstream, its load, its anchor.

The whole benchmark loads the NER model in several processes and runs for minutes (`make bench`);
these check in seconds that what it measures is what it says it measures.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway.scan.analyzer import get_analyzer
from gateway.scan.body import judge_response
from gateway.scan.redact import Outcome
from gateway.scan.settings import ScanSettings
from tests.bench.bench_proxy import wait_port
from tests.bench.bench_scan_proxy import Target, cpu_split, redactable_pool, write_pools
from tests.bench.load import build_request
from tests.bench.naive_presidio import redact
from tests.e2e.gatehouse import free_port

Pools = dict[int, list[bytes]]
PATTERNS = ScanSettings(
    tier="patterns",
    detect=("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE"),
    redact=("EMAIL_ADDRESS", "PHONE_NUMBER"),
    quarantine=("US_SSN", "CREDIT_CARD", "IBAN_CODE"),
)


def test_bodies_are_distinct_redacted_or_passed_never_quarantined() -> None:
    bodies = redactable_pool(40, 1024, seed=3)
    assert len(set(bodies)) == 40
    outcomes = [judge_response(b, "application/json", None, PATTERNS).outcome for b in bodies]
    assert Outcome.QUARANTINE not in outcomes and Outcome.UNSCANNABLE not in outcomes
    assert outcomes.count(Outcome.REDACTED) >= 10
    assert sum(b"@" in b for b in bodies) >= 10


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, Pools]]:
    """The benchmark's upstream serving a pool of 12 bodies, as a target of its own."""
    tmp = tmp_path_factory.mktemp("bodies")
    pools = write_pools(tmp, {1024: 12})
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.bench.upstream_server", str(port),
                                str(tmp)])
    try:
        wait_port(port, process)
        target = Target("direct", process, port, tmp / "log", "", f"127.0.0.1:{port}")
        target.prepare(pools, process.pid)
        yield target, pools
    finally:
        process.terminate()
        process.wait()


def test_the_upstream_serves_body_n_modulo_the_pool(pools: tuple[Target, Pools]) -> None:
    target, bodies = pools
    target.requests[1024].append(build_request("/bodies/1024/13", target.host))
    try:
        assert asyncio.run(target.fetch(1024, 12)) == (200, bodies[1024][1])
    finally:
        target.requests[1024].pop()
    assert asyncio.run(target.fetch(1024, 5)) == (200, bodies[1024][5])


def test_the_load_asks_for_each_body_in_turn(pools: tuple[Target, Pools]) -> None:
    target, _ = pools
    measured = asyncio.run(target.load(1024, 2, 0.3))
    assert measured.load.requests == target.served[1024] > 12
    assert measured.load.errors == 0 and measured.redacted == 0
    assert all(c >= 0 for c in measured.cpu)
    assert cpu_split(target.process.pid, target.process.pid)[0] > 0


def test_the_naive_anchor_replaces_findings_and_holds_what_is_quarantined() -> None:
    patterns = get_analyzer("patterns")  # the NER tier's findings, without loading its model
    text = "Write to jane.doe@example.com or call 212-555-0187 today."
    assert redact(text, patterns) == "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today."
    assert redact("SSN 536-22-8726 on file.", patterns) is None
