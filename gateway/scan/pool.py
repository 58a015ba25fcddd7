"""Scanning off the event loop: worker processes, each with its own Presidio analyzers.

Presidio is CPU-bound Python; run on the proxy's event loop it would stall every other call, and
in a thread it would hold the GIL. Worker processes use every core. The pool never raises to its
caller: a time budget passed, a crashed worker or an exception in the analyzer all come back as
an `unscannable` result, which the caller quarantines.

The proxy talks to each worker over its own socket pair, from event loop callbacks
(`add_reader`, and `add_writer` while a large body is still going out), in length-prefixed
pickles. There are no helper threads in the proxy process: `ProcessPoolExecutor`'s threads and
the GIL hand-offs they cause cost about 1.6 ms of proxy CPU per body. Bodies wait in the pool
for the first idle worker, so none queues behind a slow one; an idle worker takes the bodies
waiting then (its share when several are idle, at most MAX_BATCH, MAX_BATCH_BYTES in all) and
judges them together (`body.judge_responses`): one message each way and one Presidio pass and
`nlp.pipe` batch for all of them, which costs less per body than one by one. A worker freezes
what it loaded (`gc.freeze`) so the garbage collector no longer walks the model's objects.

A scan past its time budget cannot be interrupted inside a worker (a runaway regex keeps it
busy), so that worker is killed and a replacement started, warmed for the same settings; a
worker that dies is replaced too. A body it was judging alone comes back `unscannable`; bodies
it was judging together go back to the front of the queue, each to be judged alone, so the one
at fault does not take the others with it (so do bodies whose batch raised an exception).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from gateway.scan.settings import ScanSettings

if TYPE_CHECKING:  # Presidio and spaCy load in the workers, not in every `gatehouse` command
    from gateway.scan.body import Request
    from gateway.scan.redact import Result

log = logging.getLogger("gatehouse.scan")

STARTUP_SECONDS = 180.0  # loading the NER model in a fresh process takes a few seconds
WARM_BODY = b'{"note": "warm-up for jane.doe@example.com, 536-22-8726"}'
BROKEN = "scanner failed: BrokenProcessPool"  # the note for a worker that died, as it has been
HEADER = struct.Struct("!Q")  # the length of the pickle that follows
# Bytes asked of the socket per read: `recv` allocates that much each time, and above glibc's
# mmap threshold (1 MiB did) that is an mmap and page faults per read: 17 us instead of 1.
READ_BYTES = 64 * 1024
SPAWN = multiprocessing.get_context("spawn")  # never fork a threaded process
# Bodies judged together: beyond a few, the NER model gains little more and latency grows. A
# 10 KB body's own texts already amortise a pass (measured: no gain from batching them), so
# bodies that large go alone rather than wait for each other.
MAX_BATCH = 8
MAX_BATCH_BYTES = 16 * 1024

Judge = Callable[[Sequence["Request"]], list["Result"]]  # one result per request, in order


def judge_responses(requests: Sequence[Request]) -> list[Result]:
    """The worker's default judge (`gateway.scan.body`), imported where it runs."""
    from gateway.scan.body import judge_responses as judge
    return judge(requests)


def _warm(judge: Judge, settings: tuple[ScanSettings, ...]) -> None:
    """Worker start: build the analyzers the policy needs before the first real body, then
    leave what was loaded out of every later garbage collection (a full one walked the model's
    objects: up to 1.5 ms per 10 KB body)."""
    judge([(WARM_BODY, "application/json", None, each) for each in settings])
    gc.freeze()


def unscannable(note: str) -> Result:
    from gateway.scan.redact import Outcome, Result, Verdict
    return Result(Verdict(Outcome.UNSCANNABLE), None, note)


# -- the worker process ------------------------------------------------------------------------

def _serve(channel: socket.socket, judge: Judge, warm: tuple[ScanSettings, ...]) -> None:
    """A worker's life: warm up, say so, then judge each batch of bodies sent until the proxy
    closes its end (or exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the proxy's to handle
    channel.setblocking(True)
    _warm(judge, warm)
    channel.sendall(_frame(("ready",)))
    requests = channel.makefile("rb")
    while (request := _read_frame(requests)) is not None:
        try:
            reply = _frame(("done", judge(pickle.loads(request))))
        except Exception as e:  # the analyzer failed outside the walk; the proxy logs it
            reply = _frame(("failed", type(e).__name__, traceback.format_exc()))
        channel.sendall(reply)


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next message's pickle, or None at end of file."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


# -- the proxy's side --------------------------------------------------------------------------

@dataclass(eq=False)
class _Job:
    """One body on its way: waiting for a worker (within STARTUP_SECONDS), then being judged
    (within its own time budget)."""

    request: Request
    budget: float
    future: asyncio.Future[Result]
    timer: asyncio.TimerHandle | None = None
    alone: bool = False  # its batch failed: judged by itself from now on

    def finish(self, result: Result | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if result is not None and not self.future.done():  # its caller may have given up
            self.future.set_result(result)


class _Worker:
    """One worker process and the proxy's end of its socket, driven by the event loop."""

    def __init__(self, pool: ScanPool, loop: asyncio.AbstractEventLoop, judge: Judge,
                 warm: tuple[ScanSettings, ...]) -> None:
        self.ready = False  # warmed up and taking work
        self.jobs: list[_Job] = []  # the bodies it is judging
        self.timer: asyncio.TimerHandle | None = None  # their time budget
        self._pool = pool
        self._loop = loop
        self._out: deque[memoryview] = deque()  # what is still to be written
        self._in = bytearray()  # what was read, up to a whole message
        self._writing = False
        self.channel, theirs = socket.socketpair()
        try:
            self.process = SPAWN.Process(target=_serve, args=(theirs, judge, warm),
                                         name="gatehouse-scan", daemon=True)
            self.process.start()
        except BaseException:
            self.channel.close()
            raise
        finally:
            theirs.close()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._readable)

    def send(self, jobs: list[_Job], message: bytes) -> None:
        """Hand `jobs` over as `message`; what the socket does not take now goes when it can."""
        self.jobs = jobs
        self._out += (memoryview(HEADER.pack(len(message))), memoryview(message))
        self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self.channel.sendmsg(self._out)
            except BlockingIOError:
                break
            except OSError:  # the worker is gone; the end of file on its socket says so
                self._out.clear()
                break
            while sent:
                head = self._out[0]
                if sent < len(head):
                    self._out[0], sent = head[sent:], 0
                else:
                    self._out.popleft()
                    sent -= len(head)
        if self._out and not self._writing:
            self._loop.add_writer(self.channel.fileno(), self._flush)
        elif not self._out and self._writing:
            self._loop.remove_writer(self.channel.fileno())
        self._writing = bool(self._out)

    def _readable(self) -> None:
        try:
            data = self.channel.recv(READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._pool._exited(self)
            return
        self._in += data
        while len(self._in) >= HEADER.size:
            end = HEADER.size + HEADER.unpack_from(self._in)[0]
            if len(self._in) < end:
                break
            message = pickle.loads(self._in[HEADER.size:end])
            del self._in[:end]
            self._pool._received(self, message)
            if self.channel.fileno() < 0:  # the pool stopped this worker meanwhile
                return

    def stop(self, wait: bool) -> None:
        """Kill the process and close the socket; reap the process now (`wait`) or once it
        has exited, without blocking the loop."""
        if self.channel.fileno() >= 0:
            self._loop.remove_reader(self.channel.fileno())
            if self._writing:
                self._loop.remove_writer(self.channel.fileno())
            self.channel.close()
        self.process.kill()
        if wait or self._loop.is_closed():
            self.process.join(1)
        else:
            self._loop.add_reader(self.process.sentinel, self._reap)

    def _reap(self) -> None:
        self._loop.remove_reader(self.process.sentinel)
        self.process.join()
        self.process.close()


class ScanPool:
    """`judge` a body in a worker process within the settings' time budget."""

    def __init__(self, workers: int, judge: Judge = judge_responses) -> None:
        self.workers = max(1, workers)
        self._judge = judge
        self._warm: tuple[ScanSettings, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: list[_Worker] = []
        self._queue: deque[_Job] = deque()  # bodies waiting for an idle worker
        self._ready: asyncio.Future[None] | None = None
        self._starting: set[_Worker] = set()  # started by start(), not yet ready (or dead)

    def start(self, warm: Iterable[ScanSettings] = ()) -> None:
        """Start (or restart) the workers; they load what `warm` needs before taking work.
        Returns at once: bodies wait for the first worker that is ready."""
        self._warm = tuple(dict.fromkeys(warm))
        self._loop = asyncio.get_running_loop()
        for worker in list(self._pool):
            self._remove(worker, BROKEN)
        self._ready = self._loop.create_future()
        self._ready.add_done_callback(self._log_ready)
        self._fill()
        self._starting = set(self._pool)
        self._settle()

    def when_ready(self, callback: Callable[[], object]) -> None:
        """Run `callback` on the event loop once the workers have loaded (or failed to)."""
        assert self._ready is not None, "start() first"
        self._ready.add_done_callback(lambda _: callback())

    async def judge(
        self, raw: bytes, content_type: str | None, content_encoding: str | None,
        settings: ScanSettings,
    ) -> Result:
        """The verdict on one body; `unscannable` on any failure, never an exception."""
        try:
            if self._ready is None:
                self.start([settings])
            else:
                self._fill()  # workers that died loading are replaced when next needed
            assert self._loop is not None
            job = _Job((raw, content_type, content_encoding, settings),
                       settings.timeout_seconds, self._loop.create_future())
        except Exception as e:
            log.exception("scanning failed")
            return unscannable(f"scanner failed: {type(e).__name__}")
        if not self._pool:
            return unscannable(BROKEN)
        self._queue.append(job)
        self._dispatch()
        self._wait(job)
        return await job.future

    def close(self) -> None:
        for worker in list(self._pool):
            self._remove(worker, BROKEN, wait=True)
        for job in self._queue:
            job.finish(unscannable(BROKEN))
        self._queue.clear()
        self._ready = None

    # -- the event loop's callbacks ------------------------------------------------------------

    def _fill(self) -> None:
        """Start workers until there are `workers` of them."""
        assert self._loop is not None
        while len(self._pool) < self.workers:
            try:
                self._pool.append(_Worker(self, self._loop, self._judge, self._warm))
            except Exception:
                log.exception("could not start a scanning worker")
                return

    def _wait(self, job: _Job) -> None:
        """A body no worker took yet waits for one, though not for ever."""
        if job.timer is None and not job.future.done():
            assert self._loop is not None
            job.timer = self._loop.call_later(STARTUP_SECONDS, self._not_started, job)

    def _dispatch(self) -> None:
        """Give waiting bodies to idle workers, a share each; the time budget starts now."""
        assert self._loop is not None
        while self._queue and self._queue[0].future.done():  # its caller gave up
            self._queue.popleft().finish(None)
        idle = [worker for worker in self._pool if worker.ready and not worker.jobs]
        for n, worker in enumerate(idle):
            if not self._queue:
                return
            jobs = self._batch(-(-len(self._queue) // (len(idle) - n)))
            for job in jobs:
                if job.timer is not None:
                    job.timer.cancel()
                    job.timer = None
            budget = max(job.budget for job in jobs)
            try:
                message = pickle.dumps([job.request for job in jobs], pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                log.exception("scanning failed")
                for job in jobs:
                    job.finish(unscannable(f"scanner failed: {type(e).__name__}"))
                continue
            worker.timer = self._loop.call_later(budget, self._overran, worker, budget)
            worker.send(jobs, message)

    def _batch(self, share: int) -> list[_Job]:
        """The next bodies of the queue for one worker: up to `share` of them, within the
        limits; a body that must be judged alone goes alone."""
        jobs = [self._queue.popleft()]
        size = len(jobs[0].request[0])
        while (self._queue and not jobs[0].alone and len(jobs) < min(share, MAX_BATCH)
               and not self._queue[0].alone
               and size + len(self._queue[0].request[0]) <= MAX_BATCH_BYTES):
            job = self._queue.popleft()
            if not job.future.done():  # its caller gave up
                jobs.append(job)
                size += len(job.request[0])
        return jobs

    def _received(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        match message:
            case ("ready",):
                worker.ready = True
                self._starting.discard(worker)
                self._settle()
            case ("done", results) if len(results) == len(worker.jobs):
                self._done(worker, results)
            case ("failed", name, details):
                log.error("scanning failed in a worker:\n%s", details)
                self._retry_alone(worker)
                self._done(worker, [unscannable(f"scanner failed: {name}")] * len(worker.jobs))
            case _:
                log.error("a scanning worker answered %d bodies with %r", len(worker.jobs),
                          message[0])
                self._done(worker, [unscannable(BROKEN)] * len(worker.jobs))
        self._dispatch()

    def _done(self, worker: _Worker, results: Sequence[Result]) -> None:
        jobs, worker.jobs = worker.jobs, []
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        for job, result in zip(jobs, results, strict=True):
            job.finish(result)

    def _overran(self, worker: _Worker, budget: float) -> None:
        log.error("a scan took over %.1f s; restarting its scanning worker", budget)
        self._replace(worker, f"scan took longer than {budget:g} s")

    def _exited(self, worker: _Worker) -> None:
        if worker.ready:
            log.error("a scanning worker exited; starting another")
        else:
            log.error("a scanning worker exited while loading")
        self._replace(worker, BROKEN)

    def _not_started(self, job: _Job) -> None:
        """No worker took `job` within STARTUP_SECONDS; workers still loading are stuck."""
        if job in self._queue:
            self._queue.remove(job)
        job.finish(unscannable(f"no scanning worker ready within {STARTUP_SECONDS:g} s"))
        if not any(worker.ready for worker in self._pool):
            log.error("no scanning worker loaded within %g s; restarting them", STARTUP_SECONDS)
            for worker in list(self._pool):
                self._remove(worker, BROKEN)
            self._fill()

    def _replace(self, worker: _Worker, note: str) -> None:
        """`worker` died or overran: a body it judged alone is `note`, bodies it judged together
        wait again to be judged alone; a replacement takes over at once if it had been working
        (one that died loading is replaced when a body next comes)."""
        self._retry_alone(worker)
        self._remove(worker, note)
        if worker.ready:
            self._fill()
        if not self._pool:  # nothing left that could judge the waiting bodies
            while self._queue:
                self._queue.popleft().finish(unscannable(BROKEN))
        self._dispatch()

    def _retry_alone(self, worker: _Worker) -> None:
        """Bodies judged together that failed go back to the front of the queue, each to be
        judged alone: only the one at fault fails."""
        if len(worker.jobs) > 1:
            jobs, worker.jobs = worker.jobs, []
            if worker.timer is not None:
                worker.timer.cancel()
                worker.timer = None
            for job in reversed(jobs):
                job.alone = True
                self._queue.appendleft(job)
                self._wait(job)

    def _remove(self, worker: _Worker, note: str, wait: bool = False) -> None:
        self._pool.remove(worker)
        worker.stop(wait)
        self._done(worker, [unscannable(note)] * len(worker.jobs))
        self._starting.discard(worker)
        self._settle()

    def _settle(self) -> None:
        """Once start()'s workers are all ready or gone, the pool is ready."""
        if not self._starting and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _log_ready(self, _: asyncio.Future[None]) -> None:
        if ready := sum(worker.ready for worker in self._pool):
            log.info("response scanning ready in %d worker process(es)", ready)
