"""Shared builders: the reference policy and a short way to write a call."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from gateway.call import Call
from gateway.policy import Policy, load_policy, load_policy_text

ROOT = Path(__file__).resolve().parents[3]
ACME = ROOT / "policies" / "examples" / "acme.yaml"
BROKEN = ROOT / "tests" / "testdata" / "policies"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def acme() -> Policy:
    return load_policy(ACME)


def call(
    method: str,
    url: str,
    *,
    json_body: object = None,
    form: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    agent: str = "anonymous",
) -> Call:
    """A Call from a URL, the way a test reads best: call("POST", "https://h/p", form={...})."""
    parts = urlsplit(url)
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers += (("content-type", "application/json"),)
    if form is not None:
        body = urlencode(form).encode()
        headers += (("content-type", "application/x-www-form-urlencoded"),)
    query = tuple(
        tuple(p.split("=", 1)) if "=" in p else (p, "") for p in parts.query.split("&") if p
    )
    return Call(
        method=method,
        scheme=parts.scheme,
        host=parts.hostname or "",
        port=parts.port or (443 if parts.scheme == "https" else 80),
        path=parts.path or "/",
        query=query,  # type: ignore[arg-type]
        headers=headers,
        body=body,
        agent=agent,
    )


def mcp(tool: object, arguments: dict[str, object] | None = None, **extra: object) -> dict:
    """A JSON-RPC tools/call body."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    message["params"] = {"name": tool, "arguments": arguments or {}}
    message.update(extra)
    return message


POLICY_HEAD = """\
version: 1
policy: test
revision: "1"
"""


def policy(body: str) -> Policy:
    """A policy from a YAML fragment (the required head is added)."""
    return load_policy_text(POLICY_HEAD + body, "test.yaml")
