"""A small admin-API client for the CLI (stdlib only: the CLI must work wherever Gatehouse does)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

# Never through a proxy: an operator's shell may hold an agent's proxy variables, and the
# gateway rightly refuses calls to its own admin API that come through it.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ClientError(RuntimeError):
    """The admin API refused or could not be reached; the message says which and why."""


def call(admin: str, token: str | None, method: str, path: str,
         body: dict[str, object] | None = None) -> dict[str, object]:
    return json.loads(_send(admin, token, method, path, body) or b"{}")


def call_text(admin: str, token: str | None, path: str) -> str:
    """GET a document that is not JSON (an incident report in markdown)."""
    return _send(admin, token, "GET", path, None).decode()


def _send(admin: str, token: str | None, method: str, path: str,
          body: dict[str, object] | None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(admin.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _DIRECT.open(request, timeout=30) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as e:
        raise ClientError(_describe(e)) from e
    except urllib.error.URLError as e:
        raise ClientError(f"cannot reach the admin API at {admin}: {e.reason}; is "
                          "`gatehouse run` up, and is --admin / $GATEHOUSE_ADMIN right?") from e


def _describe(error: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(error.read())["error"]
        message = f"{error.code} {detail['type']}: {detail['message']}"
        if "details" in detail:
            message += f"\n{detail['details']}"
        return message
    except (ValueError, KeyError, TypeError):
        return f"{error.code} {error.reason}"
