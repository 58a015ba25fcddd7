"""The admin API (aiohttp): reviewers, responders, auditors and admins, never agents."""

from gateway.admin.app import create_app

__all__ = ["create_app"]
