"""A lean HTTP/1.1 keep-alive load generator (asyncio streams, pre-built request bytes).

Measuring a proxy on two cores, the client must cost little next to what it measures, so each
worker writes one prepared request and reads one response per round trip, nothing else.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p99_ms(self) -> float:
        return self.percentile(99) * 1000


def build_request(target: str, host: str, proxy_auth: str | None = None) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Accept: */*"]
    if proxy_auth:
        lines.append(f"Proxy-Authorization: Basic {proxy_auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, request: bytes, until: float,
                  latencies: list[float], errors: list[int]) -> None:
    """Keep one connection busy; a connection the server closes counts as an error and is
    opened again."""
    while time.perf_counter() < until:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (start := time.perf_counter()) < until:
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors.append(status)
        except (asyncio.IncompleteReadError, ConnectionError):
            errors.append(0)
        finally:
            writer.close()


async def run_load(host: str, port: int, request: bytes, concurrency: int,
                   seconds: float) -> LoadResult:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(_worker(host, port, request, until, latencies, errors)
                           for _ in range(concurrency)))
    return LoadResult(len(latencies), time.perf_counter() - start, latencies, len(errors))
