"""The OpenAPI document describes every route the admin API serves, with its methods."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.app import setup_routes
from gateway.admin.openapi import OPENAPI


def test_every_route_and_method_is_documented() -> None:
    app = web.Application()
    setup_routes(app)
    served = {(route.resource.canonical, route.method.lower())
              for route in app.router.routes() if route.method != "HEAD"}
    paths = OPENAPI["paths"]
    assert isinstance(paths, dict)
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert served == documented
