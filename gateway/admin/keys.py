"""Typed application state keys."""

from aiohttp import web

from gateway.services import Services

SERVICES = web.AppKey("services", Services)
