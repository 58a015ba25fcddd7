"""Where params come from, and how hostile input is read: never guess which copy counts."""

import pytest

from gateway.call import Call
from gateway.policy.params import (
    MISSING,
    UNREADABLE,
    RequestView,
    Source,
    parse_json,
    parse_source,
)

from .conftest import call


def extract(source: str, request: Call, captures: dict[str, str] | None = None) -> object:
    view = RequestView(request)
    body = view.json()
    rpc = body.get("params", MISSING) if isinstance(body, dict) else MISSING
    return view.extract(parse_source(source), captures or {}, rpc)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("json:$.a.b[0].c", Source("json", "$.a.b[0].c", ("a", "b", 0, "c"))),
        ("json:$['odd key'][2]", Source("json", "$['odd key'][2]", ("odd key", 2))),
        ("json:$", Source("json", "$", ())),
        ("form:amount", Source("form", "amount")),
        ("query:page", Source("query", "page")),
        ("path:owner", Source("path", "owner")),
        ("header:X-Request-Id", Source("header", "x-request-id")),
        ("mcp:arguments.path", Source("mcp", "arguments.path", ("arguments", "path"))),
    ],
)
def test_parse_source(text: str, parsed: Source) -> None:
    assert parse_source(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("body:amount", "unknown param source `body:amount`"),
        ("amount", "unknown param source `amount`"),
        ("json:a.b", "must start with `$`"),
        ("json:$.a[*]", "use `.name`, `['name']` and `[0]` steps only"),
        ("json:$..a", "use `.name`, `['name']` and `[0]` steps only"),
        ("form:", "needs a field name after `form:`"),
        ("mcp:", "needs a path after `mcp:`"),
    ],
)
def test_bad_sources(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_source(text)
    assert message in str(err.value)


BODY = {"personalizations": [{"to": [{"email": "a@x.example"}, {"email": "b@x.example"}]}]}


@pytest.mark.parametrize(
    ("source", "request_", "value"),
    [
        (
            "json:$.personalizations[0].to[0].email",
            call("POST", "https://h/", json_body=BODY),
            "a@x.example",
        ),
        (
            "json:$.personalizations[0].to[5].email",
            call("POST", "https://h/", json_body=BODY),
            MISSING,
        ),
        ("json:$.personalizations.to", call("POST", "https://h/", json_body=BODY), MISSING),
        ("json:$.n", call("POST", "https://h/", json_body={"n": None}), MISSING),
        ("json:$.n", call("POST", "https://h/", json_body={"n": 12.5}), 12.5),
        ("form:amount", call("POST", "https://h/", form={"amount": "5000"}), "5000"),
        ("query:page", call("GET", "https://h/?page=2"), "2"),
        ("header:x-tenant", call("GET", "https://h/", headers=(("x-tenant", "a"),)), "a"),
    ],
)
def test_extract(source: str, request_: Call, value: object) -> None:
    assert extract(source, request_) == value


def test_path_params_come_from_the_matched_pattern() -> None:
    assert extract("path:owner", call("GET", "https://h/"), {"owner": "acme"}) == "acme"
    assert extract("path:repo", call("GET", "https://h/"), {"owner": "acme"}) is MISSING


def test_mcp_params_are_relative_to_the_json_rpc_params() -> None:
    request = call("POST", "https://h/mcp", json_body={"params": {"arguments": {"path": "/x"}}})
    assert extract("mcp:arguments.path", request) == "/x"


@pytest.mark.parametrize(
    ("why", "source", "request_"),
    [
        (
            "form field sent twice",
            "form:amount",
            call("POST", "https://h/", form=[("amount", "1"), ("amount", "99999")]),
        ),
        (
            "form field also in the query",
            "form:amount",
            call("POST", "https://h/?amount=99999", form={"amount": "1"}),
        ),
        (
            "percent-encoded duplicate name",
            "form:amount",
            call("POST", "https://h/", body=b"amount=1&am%6Funt=99999"),
        ),
        ("query field sent twice", "query:page", call("GET", "https://h/?page=1&page=2")),
        (
            "query field also in a form body",
            "query:amount",
            call("POST", "https://h/?amount=1", form={"amount": "99999"}),
        ),
        (
            "header sent twice",
            "header:x-tenant",
            call("GET", "https://h/", headers=(("x-tenant", "a"), ("x-tenant", "b"))),
        ),
        (
            "duplicated JSON key",
            "json:$.amount",
            call("POST", "https://h/", body=b'{"amount": 1, "amount": 99999}'),
        ),
        (
            "duplicated JSON key higher up",
            "json:$.to[0].email",
            call("POST", "https://h/", body=b'{"to": [{"email": "a"}], "to": [{"email": "b"}]}'),
        ),
        (
            "JSON that does not parse",
            "json:$.amount",
            call("POST", "https://h/", body=b'{"amount":'),
        ),
        ("NaN is not JSON", "json:$.amount", call("POST", "https://h/", body=b'{"amount": NaN}')),
        (
            "form body that is not form encoding",
            "form:amount",
            call("POST", "https://h/", body=b'{"amount": 1}'),
        ),
        (
            "form body that is not UTF-8",
            "form:amount",
            call("POST", "https://h/", body=b"amount=\xff"),
        ),
        (
            "form value not UTF-8 once decoded",
            "form:amount",
            call("POST", "https://h/", body=b"amount=%ff"),
        ),
        (
            "JSON nested beyond the recursion limit",
            "json:$.a",
            call("POST", "https://h/", body=b"[" * 100_000 + b"]" * 100_000),
        ),
        (
            "an integer too long to convert",
            "json:$.a",
            call("POST", "https://h/", body=b'{"a": ' + b"9" * 10_000 + b"}"),
        ),
    ],
)
def test_hostile_input_makes_the_param_unreadable(why: str, source: str, request_: Call) -> None:
    assert extract(source, request_) is UNREADABLE, why


@pytest.mark.parametrize(("source", "request_"), [
    ("form:amount", call("POST", "https://h/", form={"charge": "ch_1"})),
    ("form:amount", call("POST", "https://h/")),
    ("json:$.amount", call("POST", "https://h/")),
    ("json:$.amount", call("POST", "https://h/", json_body={"other": 1})),
    ("json:$.amount", call("POST", "https://h/", json_body={"amount": None})),
    ("query:page", call("GET", "https://h/")),
])
def test_a_param_that_is_not_there_is_missing(source: str, request_: Call) -> None:
    assert extract(source, request_) is MISSING


def test_an_ambiguous_key_elsewhere_does_not_hide_an_unambiguous_one() -> None:
    request = call("POST", "https://h/", body=b'{"note": 1, "note": 2, "amount": 5}',
                   headers=(("content-type", "application/json"),))
    assert extract("json:$.amount", request) == 5
    assert extract("json:$", request) is UNREADABLE  # the whole body holds an ambiguous key


def test_json_body_is_parsed_once() -> None:
    view = RequestView(call("POST", "https://h/", json_body={"a": 1}))
    assert view.json() is view.json()


def test_empty_body_is_not_json() -> None:
    assert parse_json(b"") is MISSING


def test_a_deeply_nested_value_is_checked_without_recursion() -> None:
    depth = 900
    body = b'{"a": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    assert extract("json:$.a", call("POST", "https://h/", body=body)) != MISSING
    ambiguous = b'{"a": ' + b"[" * depth + b'{"k": 1, "k": 2}' + b"]" * depth + b"}"
    assert extract("json:$.a", call("POST", "https://h/", body=ambiguous)) is UNREADABLE
