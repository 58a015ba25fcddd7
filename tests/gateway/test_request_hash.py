"""The request hash: equal for a byte-identical retry, different for any meaningful change."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.call import Call
from gateway.request_hash import request_hash

BASE = Call(method="POST", scheme="https", host="api.stripe.com", port=443, path="/v1/refunds",
            query=(("expand", "charge"),),
            headers=(("content-type", "application/x-www-form-urlencoded"),
                     ("authorization", "Bearer sk_test"), ("user-agent", "agent/1.0"),
                     ("traceparent", "00-abc-01")),
            body=b"amount=5000", agent="support-bot")


def test_a_byte_identical_retry_has_the_same_hash() -> None:
    assert request_hash(dataclasses.replace(BASE)) == request_hash(BASE)


@pytest.mark.parametrize("change", [
    {"method": "PUT"},
    {"body": b"amount=5001"},
    {"path": "/v1/refund"},
    {"host": "api.stripe.co"},
    {"port": 8443},
    {"scheme": "http"},
    {"query": (("expand", "customer"),)},
    {"query": (("expand", "charge&x=1"),)},
    {"headers": BASE.headers[:1] + (("authorization", "Bearer sk_live"),) + BASE.headers[2:]},
    {"headers": BASE.headers + (("idempotency-key", "k2"),)},
])
def test_any_meaningful_change_changes_the_hash(change: dict[str, object]) -> None:
    assert request_hash(dataclasses.replace(BASE, **change)) != request_hash(BASE)


@pytest.mark.parametrize("header", [("user-agent", "agent/2.0"), ("traceparent", "00-def-01"),
                                    ("accept-encoding", "br"), ("content-length", "11")])
def test_transport_and_tracing_headers_stay_outside_the_hash(header: tuple[str, str]) -> None:
    others = tuple(h for h in BASE.headers if h[0] != header[0])
    assert request_hash(dataclasses.replace(BASE, headers=others + (header,))) == \
        request_hash(BASE)


def test_query_encoding_cannot_make_two_calls_look_alike() -> None:
    one = dataclasses.replace(BASE, query=(("a", "1&b=2"),))
    two = dataclasses.replace(BASE, query=(("a", "1"), ("b", "2")))
    assert request_hash(one) != request_hash(two)


def test_bytes_that_are_not_utf8_hash_and_stay_distinct() -> None:
    """mitmproxy keeps such bytes as surrogates; they must neither crash nor collide."""
    one = dataclasses.replace(BASE, path="/a\udcff", query=(("q", "\udcfe"),))
    two = dataclasses.replace(BASE, path="/a\udcfe", query=(("q", "\udcfe"),))
    assert request_hash(one) != request_hash(two)
