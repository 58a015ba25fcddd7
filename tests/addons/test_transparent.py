"""Transparent mode: a redirected call is retargeted to the name it carries, or refused."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow

from addons import meta
from addons.transparent import TransparentTarget

ORIGINAL = "203.0.113.10"  # what SO_ORIGINAL_DST gave mitmproxy


def redirected(host_header: str | None, sni: str | None = None,
               mode: str = "transparent") -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.proxy_mode = ProxyMode.parse(mode)
    flow.client_conn.sni = sni
    flow.request.data.host = ORIGINAL
    if host_header is not None:
        flow.request.headers["Host"] = host_header
    return flow


@pytest.mark.parametrize(("host_header", "sni", "target"), [
    ("Docs.Acme.Example", None, "docs.acme.example"),
    ("docs.acme.example:80", None, "docs.acme.example"),
    (None, "docs.acme.example", "docs.acme.example"),  # TLS: the SNI names it
    (ORIGINAL, None, ORIGINAL),  # an IP literal that is the original destination
])
def test_the_name_carried_becomes_the_target(host_header: str | None, sni: str | None,
                                             target: str) -> None:
    flow = redirected(host_header, sni)
    TransparentTarget().request(flow)
    assert flow.response is None
    assert flow.request.host == target
    assert flow.request.host_header == host_header  # left for egress to compare


@pytest.mark.parametrize(("host_header", "reason"), [
    (None, "must name its host"),
    ("", "must name its host"),
    ("169.254.169.254", f"names `169.254.169.254` but was sent to `{ORIGINAL}`"),
    ("0x7f.1", f"names `0x7f.1` but was sent to `{ORIGINAL}`"),
])
def test_a_call_that_does_not_agree_is_refused(host_header: str | None, reason: str) -> None:
    flow = redirected(host_header)
    TransparentTarget().request(flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert reason in flow.metadata[meta.REFUSAL_REASON]


def test_regular_mode_is_left_alone() -> None:
    flow = redirected("docs.acme.example", mode="regular")
    TransparentTarget().request(flow)
    assert flow.response is None and flow.request.host == ORIGINAL
