"""The benchmark's upstream, in a process of its own.

    python -m tests.bench.upstream_server PORT [BODIES_DIR]

Every path answers a small fixed JSON body, except `/bodies/{pool}/{n}` when BODIES_DIR is
given: body `n` (modulo the pool's size) of `BODIES_DIR/{pool}.ndjson`, one JSON body a line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

BODY = b'{"items": [' + b",".join(b'{"id": %d, "name": "item %d"}' % (i, i)
                                   for i in range(8)) + b"]}"
POOLS = web.AppKey("pools", dict[str, list[bytes]])


async def handle(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def pooled(request: web.Request) -> web.Response:
    bodies = request.app[POOLS].get(request.match_info["pool"])
    if not bodies or not request.match_info["n"].isdigit():
        raise web.HTTPNotFound()
    body = bodies[int(request.match_info["n"]) % len(bodies)]
    return web.Response(body=body, content_type="application/json")


def load_pools(directory: Path) -> dict[str, list[bytes]]:
    return {path.stem: path.read_bytes().splitlines() for path in directory.glob("*.ndjson")}


if __name__ == "__main__":
    app = web.Application()
    app[POOLS] = load_pools(Path(sys.argv[2])) if len(sys.argv) > 2 else {}
    app.router.add_get("/bodies/{pool}/{n}", pooled)
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
