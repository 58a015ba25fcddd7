"""Classification: a request becomes an action; first matching entry wins; tricks fall through."""

import pytest

from gateway.call import Call
from gateway.policy import classify

from .conftest import call, mcp, policy

SEND = "https://api.sendgrid.com/v3/mail/send"
TO_JANE = {"personalizations": [{"to": [{"email": "jane@customer.example"}]}]}
REFUNDS = "https://api.stripe.com/v1/refunds"
MCP_URL = "https://tools.acme.internal/mcp"


@pytest.mark.parametrize(
    ("request_", "action_type", "params"),
    [
        (
            call("POST", SEND, json_body=TO_JANE),
            "email.send",
            {"recipient": "jane@customer.example"},
        ),
        (
            call("POST", REFUNDS, form={"amount": "5000"}),
            "payments.refund",
            {"amount_cents": "5000"},
        ),
        (
            call("POST", MCP_URL, json_body=mcp("delete_file", {"path": "/a"})),
            "mcp.delete_file",
            {"path": "/a"},
        ),
        (call("POST", MCP_URL, json_body=mcp("read_file")), "mcp.read_file", {}),
        (call("POST", "https://api.github.com/repos/a/b/issues"), "github.write", {}),
        (call("patch", "https://api.github.com/repos/a/b"), "github.write", {}),  # any case
        (call("GET", "https://api.github.com/repos/a/b"), "http.read", {}),
        (call("POST", "https://api.openai.com/v1/chat/completions"), "llm.call", {}),
        (call("GET", "https://api.openai.com/v1/models"), "llm.call", {}),  # first match wins
        (call("HEAD", "https://docs.acme.example/"), "http.read", {}),
        (call("POST", "https://docs.acme.example/"), "unclassified", {}),
    ],
)
def test_acme_classification(acme, request_: Call, action_type: str, params: dict) -> None:
    action = classify(acme, request_)
    assert (action.type, action.params) == (action_type, params)


def test_action_carries_tags_and_the_entry_that_matched(acme) -> None:
    action = classify(acme, call("POST", REFUNDS, form={"amount": "1"}))
    assert action.tags == {"financial", "write"}
    assert action.matched == "payments.refund"
    assert classify(acme, call("POST", MCP_URL, json_body=mcp("x"))).matched == "mcp.{tool}"
    assert classify(acme, call("POST", "https://x.example/")).matched is None


@pytest.mark.parametrize(
    "path",
    [
        "//v1/refunds",
        "/v1/./refunds",
        "/v1/x/../refunds",
        "/v1/refunds/",
        "/v1/%72efunds",
        "/v1/x/%2E%2E/refunds",
        "/./v1//refunds/.",
    ],
)
def test_path_tricks_still_classify_as_the_real_action(acme, path: str) -> None:
    request = call("POST", f"https://api.stripe.com{path}", form={"amount": "50000"})
    assert classify(acme, request).type == "payments.refund"


@pytest.mark.parametrize(
    ("why", "body"),
    [
        ("a batch (JSON array)", [mcp("read_file")]),
        ("a tool name that is not a string", mcp(["read_file"])),
        ("no tool name", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {}}),
        ("an empty tool name", mcp("")),
        ("a tool name with a space", mcp("delete file")),
        ("a tool name with a look-alike letter", mcp("delete_f\u0456le")),
        ("no params at all", {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
    ],
)
def test_mcp_requests_that_are_not_a_single_named_tool_call_fall_through(
    acme, why: str, body: object
) -> None:
    assert classify(acme, call("POST", MCP_URL, json_body=body)).type == "unclassified", why


@pytest.mark.parametrize(
    "method",
    ["initialize", "notifications/initialized", "notifications/cancelled", "ping", "tools/list"],
)
def test_mcp_session_messages_to_a_declared_endpoint_are_their_own_action(
    acme, method: str
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
    action = classify(acme, call("POST", MCP_URL, json_body=body))
    assert (action.type, action.params, action.matched) == (
        "mcp/session",
        {"method": method},
        "mcp.{tool}",
    )


@pytest.mark.parametrize(
    ("why", "url", "body"),
    [
        (
            "another JSON-RPC method",
            MCP_URL,
            {"jsonrpc": "2.0", "id": 1, "method": "resources/read"},
        ),
        ("a batch of session messages", MCP_URL, [{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
        (
            "not a declared MCP endpoint",
            "https://tools.acme.internal/other",
            {"jsonrpc": "2.0", "id": 1, "method": "initialize"},
        ),
        (
            "not an MCP host",
            "https://api.sendgrid.com/mcp",
            {"jsonrpc": "2.0", "id": 1, "method": "initialize"},
        ),
    ],
)
def test_other_json_rpc_is_not_a_session_message(acme, why: str, url: str, body: object) -> None:
    assert classify(acme, call("POST", url, json_body=body)).type == "unclassified", why


def test_an_explicit_entry_for_a_session_method_wins_over_the_session_action() -> None:
    loaded = policy(
        "actions:\n"
        "  - {type: 'mcp.{tool}', match: {host: t.example, path: /mcp, mcp: tools/call}}\n"
        "  - {type: mcp.discovery, match: {host: t.example, path: /mcp, mcp: tools/list}}\n"
    )
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert classify(loaded, call("POST", "https://t.example/mcp", json_body=body)).type == (
        "mcp.discovery"
    )


def test_a_tool_named_to_look_like_a_session_is_not_one() -> None:
    loaded = policy(
        "actions:\n  - {type: 'mcp/{tool}', match: {host: t.example, mcp: tools/call}}\n"
    )
    request = call("POST", "https://t.example/mcp", json_body=mcp("session"))
    assert classify(loaded, request).type == "unclassified"


def test_a_duplicated_tool_name_falls_through(acme) -> None:
    body = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
        b' "params": {"name": "read_file", "name": "delete_file"}}'
    )
    assert classify(acme, call("POST", MCP_URL, body=body)).type == "unclassified"


JSON = (("content-type", "application/json"),)


def test_a_duplicated_argument_makes_only_that_param_unreadable(acme) -> None:
    body = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_file",'
        b' "arguments": {"path": "/tmp/x", "path": "/etc/passwd"}}}'
    )
    action = classify(acme, call("POST", MCP_URL, body=body, headers=JSON))
    assert (action.type, action.params) == ("mcp.delete_file", {})
    assert action.unreadable == {"path"}


def test_an_mcp_body_without_a_json_content_type_is_no_tool_call(acme) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read_file"}}'
    assert classify(acme, call("POST", MCP_URL, body=body)).type != "mcp.read_file"


def test_a_garbled_refund_is_still_a_refund_without_params(acme) -> None:
    action = classify(acme, call("POST", REFUNDS, form=[("amount", "5000"),
                                                        ("amount", "99999999")]))
    assert (action.type, action.params) == ("payments.refund", {})
    assert action.unreadable == {"amount_cents"}


@pytest.mark.parametrize(("content_type", "body"), [
    # valid JSON whose text is also valid form encoding with amount=50
    ("application/json", b'{"k=":"","amount":1000000,"z":"&amount=50&y="}'),
    ("multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1000000\r\n--b--\r\n'
     b"&amount=50"),
    ("", b"amount=50"),
])
def test_a_form_param_is_read_only_from_a_form_encoded_body(acme, content_type: str,
                                                            body: bytes) -> None:
    headers = (("content-type", content_type),) if content_type else ()
    action = classify(acme, call("POST", REFUNDS, body=body, headers=headers))
    assert "amount_cents" not in action.params
    assert action.unreadable == {"amount_cents"}


PATHS = """
actions:
  - type: repo.read
    match: { method: GET, host: api.github.com, path: "/repos/{owner}/{repo}" }
    params: { owner: "path:owner", repo: "path:repo", page: "query:page", id: "header:x-id" }
  - type: files
    match: { host: "*.files.example:8443", path: "/v*/files/**" }
  - type: anything
    match: {}
"""


def test_path_placeholders_query_and_headers_become_params() -> None:
    request = call("GET", "https://api.github.com/repos/acme/app?page=3", headers=(("x-id", "7"),))
    action = classify(policy(PATHS), request)
    assert action.params == {"owner": "acme", "repo": "app", "page": "3", "id": "7"}


@pytest.mark.parametrize(
    ("url", "action_type"),
    [
        ("https://eu.files.example:8443/v2/files/a/b", "files"),
        ("https://eu.files.example:443/v2/files/a/b", "anything"),  # wrong port
        ("https://files.example:8443/v2/files/a", "anything"),  # not a subdomain
        ("https://eu.files.example:8443/x2/files/a", "anything"),
    ],
)
def test_host_globs_ports_and_path_globs(url: str, action_type: str) -> None:
    assert classify(policy(PATHS), call("GET", url)).type == action_type


def test_classification_only_looks_at_entries_for_the_host() -> None:
    entries = "\n".join(f"  - {{type: t{i}, match: {{host: h{i}.example}}}}" for i in range(500))
    loaded = policy(f"actions:\n{entries}\n  - {{type: wild, match: {{host: '*.w.example'}}}}\n")
    assert [e.template for e in loaded.classifier.candidates("h7.example")] == ["t7"]
    assert [e.template for e in loaded.classifier.candidates("a.w.example")] == ["wild"]
    assert loaded.classifier.candidates("other.example") == ()


def test_a_tool_name_longer_than_the_mcp_limit_falls_through(acme) -> None:
    assert classify(acme, call("POST", MCP_URL, json_body=mcp("read_" + "x" * 123))).type == (
        "mcp.read_" + "x" * 123
    )
    too_long = mcp("read_" + "x" * 124)
    assert classify(acme, call("POST", MCP_URL, json_body=too_long)).type == "unclassified"


@pytest.mark.parametrize(("method", "body", "expected"), [
    ("GET", b'[{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
            b' "params": {"name": "delete_file", "arguments": {"path": "/"}}}]', "unclassified"),
    ("POST", b'[{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
             b' "params": {"name": "read_file", "arguments": {"path": "/"}}}]', "unclassified"),
    ("GET", b"", "mcp/session"),  # the server's notification stream
    ("DELETE", b"", "mcp/session"),  # the end of a session
    ("PUT", b"", "unclassified"),
])
def test_an_mcp_endpoint_claims_every_request_sent_to_it(acme, method: str, body: bytes,
                                                         expected: str) -> None:
    action = classify(acme, call(method, MCP_URL, body=body, headers=JSON))
    assert action.type == expected
