"""The request hash: equal for a byte-identical retry, different for anything an upstream
could read differently."""

from __future__ import annotations

import gzip

import pytest

from gateway.request_hash import request_hash

BASE: dict[str, object] = {
    "method": "POST", "scheme": "https", "host": "api.stripe.com", "port": 443,
    "target": "/v1/refunds?expand=charge",
    "headers": (("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", "Bearer sk_test"), ("User-Agent", "agent/1.0"),
                ("traceparent", "00-abc-01")),
    "body": b"amount=5000",
}


def hashed(**change: object) -> str:
    return request_hash(**{**BASE, **change})  # type: ignore[arg-type]


def test_a_byte_identical_retry_has_the_same_hash() -> None:
    assert hashed() == hashed()


@pytest.mark.parametrize("change", [
    {"method": "PUT"},
    {"method": "post"},  # sent differently: some servers care
    {"body": b"amount=5001"},
    {"body": gzip.compress(b"amount=5000")},  # the bytes sent, not their decoding
    {"target": "/v1/refund?expand=charge"},
    {"target": "/v1/refunds?expand=customer"},
    {"target": "/v1/refunds?expand=charge%3Bforce%3Dtrue"},
    {"target": "/v1/refunds?expand=charge;force=true"},
    {"target": "/v1/refunds?expand=%63harge"},
    {"host": "api.stripe.co"},
    {"port": 8443},
    {"scheme": "http"},
    {"headers": BASE["headers"][:1] + (("Authorization", "Bearer sk_live"),)  # type: ignore[index]
     + BASE["headers"][2:]},  # type: ignore[index]
    {"headers": BASE["headers"] + (("Idempotency-Key", "k2"),)},  # type: ignore[operator]
])
def test_anything_an_upstream_could_read_differently_changes_the_hash(
        change: dict[str, object]) -> None:
    assert hashed(**change) != hashed()


@pytest.mark.parametrize("header", [("User-Agent", "agent/2.0"), ("traceparent", "00-def-01"),
                                    ("Accept-Encoding", "br"), ("Content-Length", "11")])
def test_transport_and_tracing_headers_stay_outside_the_hash(header: tuple[str, str]) -> None:
    others = tuple(h for h in BASE["headers"] if h[0] != header[0])  # type: ignore[attr-defined]
    assert hashed(headers=others + (header,)) == hashed()


def test_header_names_are_compared_without_case() -> None:
    lower = tuple((k.lower(), v) for k, v in BASE["headers"])  # type: ignore[attr-defined]
    assert hashed(headers=lower) == hashed()


def test_bytes_that_are_not_utf8_hash_and_stay_distinct() -> None:
    """mitmproxy keeps such bytes as surrogates; they must neither crash nor collide."""
    assert hashed(target="/a\udcff") != hashed(target="/a\udcfe")
