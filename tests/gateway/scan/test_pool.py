"""The scanning pool judges bodies in worker processes and never lets a failure pass a body."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import orjson
import pytest

from gateway.scan.body import Request, judge_response
from gateway.scan.pool import ScanPool
from gateway.scan.redact import Outcome, Result, Verdict
from gateway.scan.settings import ScanSettings

SETTINGS = ScanSettings(tier="patterns", detect=("EMAIL_ADDRESS", "US_SSN"),
                        redact=("EMAIL_ADDRESS",), quarantine=("US_SSN",), timeout_seconds=5.0)
SSN_BODY = orjson.dumps({"note": "ssn 536-22-8726"})


def faulty_judge(requests: Sequence[Request]) -> list[Result]:
    """The real judge, except for bodies that name a fault: raise, hang, or kill the worker."""
    for raw, *_ in requests:
        if b"fault-raise" in raw:
            raise RuntimeError("analyzer exploded")
        if b"fault-hang" in raw:
            time.sleep(60)
        if b"fault-die" in raw:
            os.kill(os.getpid(), signal.SIGKILL)
    return [judge_response(*request) for request in requests]


def _judge_all(*bodies: bytes, settings: ScanSettings = SETTINGS) -> list[Result]:
    async def main() -> list[Result]:
        pool = ScanPool(1, faulty_judge)
        pool.start([SETTINGS])
        try:
            return [await pool.judge(b, "application/json", None, settings) for b in bodies]
        finally:
            pool.close()

    return asyncio.run(main())


def test_a_body_is_redacted_by_a_worker_process() -> None:
    [result] = _judge_all(orjson.dumps({"contact": "jane.doe@example.com", "id": 7}))
    assert result.outcome is Outcome.REDACTED
    assert result.body is not None
    assert orjson.loads(result.body) == {"contact": "<EMAIL_ADDRESS>", "id": 7}


def test_an_analyzer_exception_is_unscannable_and_the_pool_goes_on() -> None:
    failed, after = _judge_all(b"fault-raise", SSN_BODY)
    assert (failed.outcome, failed.note) == (Outcome.UNSCANNABLE, "scanner failed: RuntimeError")
    assert after.outcome is Outcome.QUARANTINE


@pytest.mark.parametrize("fault,note", [
    (b"fault-hang", "scan took longer than 2 s"),
    (b"fault-die", "scanner failed: BrokenProcessPool"),
])
def test_a_stuck_or_dead_worker_is_replaced_and_its_body_unscannable(
    fault: bytes, note: str
) -> None:
    stuck, after = _judge_all(fault, SSN_BODY, settings=replace(SETTINGS, timeout_seconds=2.0))
    assert (stuck.outcome, stuck.note) == (Outcome.UNSCANNABLE, note)
    assert after.outcome is Outcome.QUARANTINE  # the replacement workers scan again


def probe_judge(requests: Sequence[Request]) -> list[Result]:
    """Pass each body back as is, noting which worker judged it and with how many others; a
    `sleep` body takes 1 s."""
    results = []
    for raw, *_ in requests:
        if raw.startswith(b"sleep"):
            time.sleep(1)
        results.append(Result(Verdict(Outcome.PASS), raw, f"{os.getpid()} {len(requests)}"))
    return results


def _with_pool(workers: int, judge: Callable[..., Result],
               test: Callable[[ScanPool], Awaitable[None]]) -> None:
    async def main() -> None:
        pool = ScanPool(workers, judge)
        pool.start([SETTINGS])
        ready = asyncio.get_running_loop().create_future()
        pool.when_ready(lambda: ready.set_result(None))
        await ready
        try:
            await test(pool)
        finally:
            pool.close()

    asyncio.run(main())


def test_a_large_body_never_blocks_the_event_loop() -> None:
    async def test(pool: ScanPool) -> None:
        first = await pool.judge(b"{}", "application/json", None, SETTINGS)
        assert first.note is not None
        worker = int(first.note.split()[0])
        body = b"x" * (4 << 20)  # far beyond what the socket buffers hold
        os.kill(worker, signal.SIGSTOP)  # a worker that does not read: the write must wait
        resume = threading.Timer(3, os.kill, (worker, signal.SIGCONT))  # should the loop block
        resume.start()
        try:
            scan = asyncio.create_task(pool.judge(body, "text/plain", None, SETTINGS))
            started = time.monotonic()
            for _ in range(30):
                await asyncio.sleep(0.01)
            assert time.monotonic() - started < 1.0 and not scan.done()
        finally:
            resume.cancel()
            os.kill(worker, signal.SIGCONT)
        result = await scan
        assert (result.outcome, result.body, result.note) == (Outcome.PASS, body, first.note)

    _with_pool(1, probe_judge, test)


def test_bodies_are_judged_in_parallel_without_threads_in_the_proxy() -> None:
    threads = threading.active_count()

    async def test(pool: ScanPool) -> None:
        started = time.monotonic()
        results = await asyncio.gather(*(
            pool.judge(b"sleep %d" % i, "text/plain", None, SETTINGS) for i in range(2)))
        assert time.monotonic() - started < 1.8
        assert len({r.note for r in results}) == 2  # one body in each worker
        assert threading.active_count() == threads

    _with_pool(2, probe_judge, test)


def test_a_stuck_worker_holds_up_no_other_body() -> None:
    settings = replace(SETTINGS, timeout_seconds=2.0)

    async def test(pool: ScanPool) -> None:
        stuck, *others = await asyncio.gather(*(
            pool.judge(body, "application/json", None, settings)
            for body in (b"fault-hang", SSN_BODY, SSN_BODY, SSN_BODY)))
        assert (stuck.outcome, stuck.note) == (Outcome.UNSCANNABLE, "scan took longer than 2 s")
        assert [r.outcome for r in others] == [Outcome.QUARANTINE] * 3

    _with_pool(2, faulty_judge, test)


def test_bodies_waiting_for_a_busy_worker_are_judged_together() -> None:
    async def test(pool: ScanPool) -> None:
        first, *waiting = await asyncio.gather(*(
            pool.judge(body, "text/plain", None, SETTINGS)
            for body in (b"sleep", b"one", b"two", b"three")))
        assert first.note is not None and first.note.endswith(" 1")
        assert [r.body for r in waiting] == [b"one", b"two", b"three"]
        assert {r.note for r in waiting} == {f"{first.note.split()[0]} 3"}

    _with_pool(1, probe_judge, test)


@pytest.mark.parametrize("fault,note", [
    (b"fault-hang", "scan took longer than 2 s"),
    (b"fault-die", "scanner failed: BrokenProcessPool"),
    (b"fault-raise", "scanner failed: RuntimeError"),
])
def test_a_batch_that_fails_is_judged_again_body_by_body(fault: bytes, note: str) -> None:
    """The body at fault is unscannable; those judged with it are judged again, alone. (The
    first body keeps the worker busy while the other three queue up for it together.)"""
    settings = replace(SETTINGS, timeout_seconds=2.0)

    async def test(pool: ScanPool) -> None:
        first, *batch = await asyncio.gather(*(
            pool.judge(body, "application/json", None, settings)
            for body in (SSN_BODY, SSN_BODY, fault, SSN_BODY)))
        assert [r.outcome for r in (first, *batch)] == [
            Outcome.QUARANTINE, Outcome.QUARANTINE, Outcome.UNSCANNABLE, Outcome.QUARANTINE]
        assert batch[1].note == note

    _with_pool(1, faulty_judge, test)
