"""Response scanning through the proxy: throughput and latency on distinct realistic JSON bodies.

    python -m tests.bench.bench_scan_proxy [--seconds 3] [--rounds 3] [--sizes 1024,10240]
        [--concurrency 10] [--bodies 3000,800] [--scan-workers 2] [--naive-analyzer stock]

One run, five targets, each measured in interleaved rounds so machine noise hits them alike:
plain mitmdump; the naive anchor, mitmdump running Presidio NER on its event loop
(tests/bench/naive_presidio.py); Gatehouse with scanning off (empty `responses` lists); Gatehouse
scanning at the `patterns` tier; Gatehouse at the `ner` tier (adds PERSON). Every request asks
the local upstream for a different body of a pool of distinct Faker bodies (bench_scanner's
generator) of each size, about half carrying personal data Gatehouse redacts (e-mail addresses,
phones, names) and none what it quarantines, so the redact-or-pass path is what is measured.

Before and after measuring, each target must answer bodies correctly (the plain ones
untouched, the scanning ones with every e-mail address gone); during the load an answer that is
not 200 is an error (a 502 `quarantined` is listed apart: a false positive, as the pool holds
nothing to quarantine), and answers carrying a `<TYPE>` marker are counted, so a broken gateway
cannot look fast. Reports median req/s over rounds, p50 and p99 latency, CPU per answer split
into the proxy process, its scan workers and the rest of the test bed, and the issue's targets:
`patterns` ≥ 0.6x plain mitmdump and `ner` ≥ 10x naive at each size, and `ner` ≥ 220 req/s at
the smallest (1 KB: ten times the ~22 req/s the issue measured for naive NER).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.bench_proxy import BIN, gatehouse_token, wait_port
from tests.bench.bench_scanner import Bodies
from tests.bench.load import LoadResult, build_request
from tests.e2e.gatehouse import GATEHOUSE, free_port

HOST = "bench.example"
AGENT = "bench-agent"
NAIVE = Path(__file__).with_name("naive_presidio.py")
MARKERS = (b"<EMAIL_ADDRESS>", b"<PHONE_NUMBER>", b"<PERSON>")
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
HELD = re.compile(rb'"quarantine_id".*"reason": ?"([^"]*)"')
READY_SECONDS = 240.0  # Presidio and the spaCy model load in several processes at once
PATTERNS_TARGET, NER_NAIVE_TARGET, NER_RPS_TARGET = 0.6, 10.0, 220.0

POLICY = """\
version: 1
policy: bench-scan
revision: "1"
default: deny
egress:
  allow: [bench.example]
actions:
  - type: bodies.get
    match: {{ method: GET, host: bench.example, path: "/bodies/**" }}
rules:
  - id: read-bodies
    when: {{ action: bodies.get }}
    decision: allow
responses:
{responses}
"""
RESPONSES = {
    "off": "  detect: []",
    "patterns": """\
  tier: patterns
  detect: [EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, CREDIT_CARD, IBAN_CODE]
  redact: [EMAIL_ADDRESS, PHONE_NUMBER]
  quarantine: [US_SSN, CREDIT_CARD, IBAN_CODE]""",
    "ner": """\
  tier: ner
  detect: [EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, CREDIT_CARD, IBAN_CODE, PERSON]
  redact: [EMAIL_ADDRESS, PHONE_NUMBER, PERSON]
  quarantine: [US_SSN, CREDIT_CARD, IBAN_CODE]""",
}


class _Redactable:
    """Faker, except that what Gatehouse quarantines (SSNs, cards, IBANs) comes out as what it
    redacts (phones, e-mail addresses): a quarantined body is a 502, another path."""

    def __init__(self, fake: Any) -> None:
        self._fake = fake

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fake, name)

    def ssn(self) -> str:
        return self._fake.phone_number()

    def credit_card_number(self, *args: Any, **kwargs: Any) -> str:
        return self._fake.email()

    def iban(self) -> str:
        return self._fake.email()


def redactable_pool(count: int, size: int, seed: int) -> list[bytes]:
    """`count` distinct bodies of about `size` bytes, every other one with personal data, the
    same ones in the same order for a seed."""
    gen = Bodies(seed)
    gen.fake = _Redactable(gen.fake)
    bodies: dict[bytes, None] = {}
    while len(bodies) < count:
        bodies[gen.body(size, pii=len(bodies) % 2 == 0)] = None
    return list(bodies)


# The load: like tests.bench.load, but each request asks for the next body of the pool.

async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(head[9:12]), await reader.readexactly(length)


def _cpu(pid: int) -> float:
    """CPU seconds used so far by a process (Linux `/proc`; 0 elsewhere or once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    try:
        found = [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children")
                 for c in f.read_text().split()]
    except OSError:
        return []
    return found + [d for c in found for d in _descendants(c)]


def cpu_split(pid: int, upstream: int) -> tuple[float, float, float]:
    """CPU seconds so far of a proxy's own process, of its children (Gatehouse's scan workers),
    and of the rest of the test bed (upstream and this load generator)."""
    return (_cpu(pid), sum(_cpu(c) for c in _descendants(pid)),
            _cpu(upstream) + time.process_time())


@dataclass
class Measured:
    load: LoadResult
    redacted: int  # answers with a `<TYPE>` marker in the body
    cpu: tuple[float, ...]  # CPU seconds used meanwhile, as `cpu_split` splits them
    errors: list[str]
    held: list[str]


@dataclass
class Target:
    """A proxy under test: its process, and how to ask it for body `i` of a pool."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    origin: str  # what goes before `/bodies/{size}/{i}` in the request target
    host: str
    auth: str | None = None
    scans: bool = False
    ner: bool = False
    requests: dict[int, list[bytes]] = field(default_factory=dict)  # size → one per body
    upstream: int = 0  # its process id
    served: dict[int, int] = field(default_factory=dict)  # size → bodies asked for so far

    def prepare(self, pools: dict[int, list[bytes]], upstream: int) -> None:
        """Wait until it listens; build one request per body of each pool."""
        self.upstream = upstream
        try:
            wait_port(self.port, self.process, READY_SECONDS)
        except RuntimeError:
            self.show_log()
            raise
        self.requests = {size: [build_request(f"{self.origin}/bodies/{size}/{i}", self.host,
                                              self.auth) for i in range(len(bodies))]
                         for size, bodies in pools.items()}

    def show_log(self) -> None:
        if self.log.exists():
            print(f"--- {self.log} ---\n{self.log.read_text()[-3000:]}", file=sys.stderr)

    async def load(self, size: int, concurrency: int, seconds: float) -> Measured:
        requests = self.requests[size]
        self.served.setdefault(size, 0)
        latencies: list[float] = []
        errors: list[str] = []  # what went wrong, one line each
        held: list[str] = []  # bodies Gatehouse quarantined (answered 502), and why
        redacted = 0

        async def worker(until: float) -> None:
            nonlocal redacted
            while time.perf_counter() < until:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    while (start := time.perf_counter()) < until:
                        n = self.served[size] % len(requests)
                        self.served[size] += 1
                        status, body = await _exchange(reader, writer, requests[n])
                        latencies.append(time.perf_counter() - start)
                        if status == 502 and (why := HELD.search(body)):
                            held.append(f"body {size}/{n}: {why[1].decode()}")
                        elif status != 200:
                            errors.append(f"body {size}/{n}: {status} {body[:200]!r}")
                        redacted += any(m in body for m in MARKERS)
                except (asyncio.IncompleteReadError, ConnectionError) as e:
                    errors.append(f"connection: {e!r}")
                finally:
                    writer.close()

        before = cpu_split(self.process.pid, self.upstream)
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds) for _ in range(concurrency)))
        result = LoadResult(len(latencies), time.perf_counter() - start, latencies, len(errors))
        after = cpu_split(self.process.pid, self.upstream)
        cpu = tuple(a - b for a, b in zip(after, before, strict=True))
        return Measured(result, redacted, cpu, errors, held)

    async def fetch(self, size: int, index: int) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            return await asyncio.wait_for(
                _exchange(reader, writer, self.requests[size][index]), READY_SECONDS)
        finally:
            writer.close()


async def verify(target: Target, pools: dict[int, list[bytes]], samples: int = 24) -> None:
    """Answers are right: untouched when not scanning; every e-mail address gone, some `<TYPE>`
    markers (and `<PERSON>` for NER) when scanning. The first call also waits for readiness.
    Samples come from the end of the pool; the load starts at its beginning."""
    seen: set[bytes] = set()
    for size, bodies in pools.items():
        for i in range(len(bodies) - 1, max(-1, len(bodies) - 1 - samples), -1):
            status, body = await target.fetch(size, i)
            if target.scans and status == 502 and HELD.search(body):
                continue  # a false positive, listed by the load when it meets it
            if status != 200:
                raise AssertionError(f"{target.name}: body {size}/{i} answered {status}: "
                                     f"{body[:300]!r}")
            if not target.scans:
                assert body == bodies[i], f"{target.name}: body {size}/{i} was changed"
                continue
            left = [e for e in EMAIL.findall(bodies[i]) if e in body]
            assert not left, f"{target.name}: body {size}/{i} still has {left}"
            seen.update(m for m in MARKERS if m in body)
    if target.scans:
        wanted = set(MARKERS) if target.ner else {b"<EMAIL_ADDRESS>", b"<PHONE_NUMBER>"}
        assert seen >= wanted, f"{target.name}: no {sorted(wanted - seen)} in the samples"


def write_pools(directory: Path, counts: dict[int, int]) -> dict[int, list[bytes]]:
    pools = {size: redactable_pool(count, size, seed=size) for size, count in counts.items()}
    for size, bodies in pools.items():
        (directory / f"{size}.ndjson").write_bytes(b"\n".join(bodies))
    return pools


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def summarise(results: list[Measured]) -> dict[str, float]:
    return {
        "rps": statistics.median(m.load.rps for m in results),
        "p50": statistics.median(m.load.p50_ms for m in results),
        "p99": statistics.median(m.load.p99_ms for m in results),
        "requests": sum(m.load.requests for m in results),
        "errors": sum(m.load.errors for m in results),
        "held": sum(len(m.held) for m in results),
        "redacted": sum(m.redacted for m in results),
        "cpu_proxy": sum(m.cpu[0] for m in results),
        "cpu_children": sum(m.cpu[1] for m in results),
        "cpu_rest": sum(m.cpu[2] for m in results),
        "seconds": sum(m.load.seconds for m in results),
    }


def verdict(label: str, value: float, target: float, unit: str, detail: str,
            idle: float) -> bool:
    met = value >= target
    print(f"  {'met    ' if met else 'NOT MET'}  {label}: {value:.2f}{unit} [{idle:.2f}{unit}] "
          f"(target >= {target:g}{unit}; {detail})")
    return met


def ceiling(s: dict[str, float], scan_workers: int) -> float:
    """Req/s the CPU per answer allows on this machine were it idle: every core busy, the
    proxy's own process at most one core (one event loop, one GIL), each worker one."""
    if not s["requests"]:
        return 0.0
    total = (s["cpu_proxy"] + s["cpu_children"] + s["cpu_rest"]) / s["requests"]
    bounds = [(os.cpu_count() or 1) / total, s["requests"] / s["cpu_proxy"]]
    if s["cpu_children"]:
        bounds.append(scan_workers * s["requests"] / s["cpu_children"])
    return min(bounds)


def report(results: dict[tuple[str, int], list[Measured]], targets: list[Target],
           pools: dict[int, list[bytes]], concurrency: int, rounds: int, seconds: float,
           scan_workers: int, naive_analyzer: str) -> list[bool]:
    """The table, then one line per target of the issue; whether each was met."""
    sizes = sorted(pools)
    summaries = {key: summarise(value) for key, value in results.items()}
    print(f"\nresponse scanning, c={concurrency}, median of {rounds} rounds of {seconds:g} s, "
          f"{scan_workers} scan worker(s), naive analyzer: {naive_analyzer}")
    print(f"  {'target':<30}{'size':>7}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
          f"{'held':>5}{'redacted':>9}{'pool':>6}{'cpu ms/req':>11}{'workers':>8}{'rest':>6}"
          f"{'cores':>6}{'ceiling':>8}")
    for size in sizes:
        for target in targets:
            s = summaries[(target.name, size)]
            share = s["redacted"] / s["requests"] if s["requests"] else 0.0
            per = 1000 / s["requests"] if s["requests"] else 0.0
            cpu = s["cpu_proxy"] + s["cpu_children"] + s["cpu_rest"]
            print(f"  {target.name:<30}{size:>7}{s['rps']:>8.1f}{s['p50']:>8.1f}{s['p99']:>8.1f}"
                  f"{s['errors']:>7.0f}{s['held']:>5.0f}{share:>9.0%}"
                  f"{target.served[size] / len(pools[size]):>5.1f}x"
                  f"{s['cpu_proxy'] * per:>11.2f}{s['cpu_children'] * per:>8.2f}"
                  f"{s['cpu_rest'] * per:>6.2f}{cpu / s['seconds']:>6.2f}"
                  f"{ceiling(s, scan_workers):>8.0f}")
    print("  held: answered 502 quarantined (the pool has no SSN, card or IBAN: a false positive)\n"
          "  redacted: answers with a <TYPE> marker; pool: times the target went through the\n"
          "  pool of distinct bodies (warm-up included); cpu ms/req: CPU of the proxy's own\n"
          "  process per answer; workers: of its children (Gatehouse's scan workers); rest: of\n"
          "  the upstream and the load generator; cores: all of it per second of wall time\n"
          f"  ({os.cpu_count()} here: below that, something else had the rest); ceiling: req/s\n"
          "  that CPU per answer allows on this machine were it idle (see `ceiling`)")

    def rps(name: str, size: int) -> tuple[float, float]:
        s = summaries[(name, size)]
        return s["rps"], ceiling(s, scan_workers)

    print("\ntargets (measured; in brackets, the same from the ceilings)")
    met = []
    for size in sizes:
        (plain, plain_c), (naive, naive_c) = (rps("mitmdump (plain)", size),
                                              rps("naive (Presidio NER in loop)", size))
        (patterns, patterns_c), (ner, ner_c) = (rps("gatehouse patterns", size),
                                                rps("gatehouse ner", size))
        met.append(verdict(f"{size} B patterns / plain mitmdump", patterns / plain,
                           PATTERNS_TARGET, "x", f"{patterns:.0f} vs {plain:.0f} req/s",
                           patterns_c / plain_c))
        met.append(verdict(f"{size} B ner / naive", ner / naive, NER_NAIVE_TARGET, "x",
                           f"{ner:.0f} vs {naive:.1f} req/s", ner_c / naive_c))
    s = summaries[("gatehouse ner", sizes[0])]
    met.append(verdict(f"{sizes[0]} B ner", s["rps"], NER_RPS_TARGET, " req/s",
                       f"p99 {s['p99']:.0f} ms", ceiling(s, scan_workers)))
    errors = [f"{name} {e}" for (name, _), measured in results.items() for m in measured
              for e in m.errors]
    if errors:
        print(f"  {len(errors)} answers were not 200, the numbers above are suspect:")
        for line in errors[:10]:
            print(f"    {line}")
    held = sorted({f"{name} {h}" for (name, _), measured in results.items() for m in measured
                   for h in m.held})
    if held:
        print(f"  quarantined although the pool holds no SSN, card or IBAN ({len(held)} "
              "distinct bodies):")
        for line in held[:10]:
            print(f"    {line}")
    return met


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--seconds", type=float, default=3.0, help="per target and round")
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--sizes", default="1024,10240", help="body sizes in bytes")
    options.add_argument("--concurrency", type=int, default=10)
    options.add_argument("--bodies", default="3000,800",
                         help="distinct bodies per size, one number or one per size; enough "
                         "that a scanning worker's cache of short strings sees few repeats")
    options.add_argument("--scan-workers", type=int, default=2)
    options.add_argument("--naive-analyzer", choices=("gatehouse", "stock"), default="gatehouse",
                         help="the naive anchor's analyzer: the `ner` tier's, or Presidio's "
                         "defaults around the same model (tests/bench/naive_presidio.py)")
    opts = options.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    counts = [int(n) for n in opts.bodies.split(",")]
    if len(counts) not in (1, len(sizes)):
        options.error("--bodies: one number, or one per size")
    counts = dict(zip(sizes, counts * len(sizes) if len(counts) == 1 else counts, strict=True))
    sizes.sort()

    began = time.monotonic()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-scan-"))
    up = free_port()
    targets: list[Target] = []
    processes: list[subprocess.Popen[bytes]] = []

    def mitmdump(name: str, extra: list[str], scans: bool) -> None:
        port = free_port()
        slug = name.split()[0]
        log = tmp / f"{slug}.log"
        process = spawn([str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
                         "--listen-port", str(port), "--set", f"confdir={tmp / slug}",
                         *extra], log)
        processes.append(process)
        targets.append(Target(name, process, port, log, f"http://127.0.0.1:{up}",
                              f"127.0.0.1:{up}", scans=scans, ner=scans))

    def gatehouse(name: str, responses: str) -> None:
        port, admin = free_port(), free_port()
        home = tmp / f"gatehouse-{responses}"
        home.mkdir()
        (home / "policy.yaml").write_text(POLICY.format(responses=RESPONSES[responses]))
        token = gatehouse_token(home / "state")
        process = spawn([
            GATEHOUSE, "run", "--policy", str(home / "policy.yaml"), "--state",
            str(home / "state"), "--listen", f"127.0.0.1:{port}", "--admin",
            f"127.0.0.1:{admin}", "--connect-to", f"{HOST}:80=127.0.0.1:{up}",
            "--scan-workers", str(opts.scan_workers)], home / "gatehouse.log")
        processes.append(process)
        targets.append(Target(name, process, port, home / "gatehouse.log", f"http://{HOST}",
                              HOST, base64.b64encode(f"{AGENT}:{token}".encode()).decode(),
                              scans=responses != "off", ner=responses == "ner"))

    try:
        # The proxies load (Presidio, spaCy) while the bodies are written.
        mitmdump("mitmdump (plain)", [], scans=False)
        mitmdump("naive (Presidio NER in loop)", ["-s", str(NAIVE), "--set",
                 f"naive_analyzer={opts.naive_analyzer}"], scans=True)
        gatehouse("gatehouse (scan off)", "off")
        gatehouse("gatehouse patterns", "patterns")
        gatehouse("gatehouse ner", "ner")
        pools = write_pools(tmp, counts)
        for size in sizes:
            lengths = [len(b) for b in pools[size]]
            print(f"{size:>6} B pool: {len(lengths)} distinct bodies, "
                  f"median {statistics.median(lengths):.0f} B", flush=True)
        upstream = spawn([sys.executable, "-m", "tests.bench.upstream_server", str(up),
                          str(tmp)], tmp / "upstream.log")
        processes.append(upstream)
        wait_port(up, upstream)
        for target in targets:
            target.prepare(pools, upstream.pid)
            try:
                asyncio.run(verify(target, pools))
            except BaseException:
                target.show_log()
                raise
        print(f"all targets answer correctly ({time.monotonic() - began:.0f} s to start); "
              f"measuring c={opts.concurrency}, {opts.rounds} rounds of {opts.seconds:g} s "
              f"per target and size", flush=True)
        for target in targets:  # warm-up
            for size in sizes:
                asyncio.run(target.load(size, opts.concurrency, 0.5))
        results: dict[tuple[str, int], list[Measured]] = {}
        for r in range(opts.rounds):
            for size in sizes:
                for target in targets:
                    measured = asyncio.run(target.load(size, opts.concurrency, opts.seconds))
                    results.setdefault((target.name, size), []).append(measured)
            print(f"  round {r + 1}/{opts.rounds} done", flush=True)
        for target in targets:  # still right after the load
            asyncio.run(verify(target, pools))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    met = report(results, targets, pools, opts.concurrency, opts.rounds, opts.seconds,
                 opts.scan_workers, opts.naive_analyzer)
    load_after = os.getloadavg()
    print(f"\n{sum(met)}/{len(met)} targets met; {time.monotonic() - began:.0f} s in all; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
