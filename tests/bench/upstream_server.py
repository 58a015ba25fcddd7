"""The benchmark's upstream: a small fixed JSON answer, in a process of its own."""

from __future__ import annotations

import sys

from aiohttp import web

BODY = b'{"items": [' + b",".join(b'{"id": %d, "name": "item %d"}' % (i, i)
                                   for i in range(8)) + b"]}"


async def handle(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
