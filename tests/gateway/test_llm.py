"""Model calls as evidence: the model, its temperature, the tools offered, the tool calls back."""

from __future__ import annotations

import orjson
import pytest

from gateway.llm import MAX_ARGUMENT_CHARS, is_model_call, read_model_call

TOOLS = [{"type": "function", "function": {"name": "send_email"}}, {"name": "lookup"}]


@pytest.mark.parametrize(("path", "method", "expected"), [
    ("/v1/chat/completions", "POST", True),
    ("/v1/responses?stream=false", "POST", True),
    ("/v1/messages", "POST", True),
    ("/v1/chat/completions", "GET", False),
    ("/v1/models", "POST", False),
])
def test_model_calls_are_known_by_their_path(path: str, method: str, expected: bool) -> None:
    assert is_model_call(path, method) is expected


def test_an_openai_chat_completion_yields_its_tool_calls() -> None:
    answer = {"choices": [{"message": {"tool_calls": [{"type": "function", "function": {
        "name": "send_email", "arguments": '{"to": "a@b.example"}'}}]}}]}
    call = read_model_call("/v1/chat/completions", orjson.dumps(
        {"model": "gpt-x", "temperature": 0.2, "tools": TOOLS}), orjson.dumps(answer))
    assert call is not None and call.to_json() == {
        "api": "openai", "model": "gpt-x", "temperature": 0.2, "tools": ["send_email", "lookup"],
        "tool_calls": [{"name": "send_email", "arguments": '{"to": "a@b.example"}'}]}


def test_the_responses_api_and_anthropic_tool_use_are_read_too() -> None:
    responses = read_model_call("/v1/responses", b'{"model": "m"}', orjson.dumps(
        {"output": [{"type": "function_call", "name": "refund", "arguments": "{}"}]}))
    anthropic = read_model_call("/v1/messages", b'{"model": "claude", "temperature": 1}',
                                orjson.dumps({"content": [
                                    {"type": "text", "text": "ok"},
                                    {"type": "tool_use", "name": "refund",
                                     "input": {"amount": 5}}]}))
    assert responses is not None and [c.name for c in responses.tool_calls] == ["refund"]
    assert anthropic is not None and anthropic.api == "anthropic"
    assert anthropic.temperature == 1.0
    assert [c.to_json() for c in anthropic.tool_calls] == [
        {"name": "refund", "arguments": '{"amount":5}'}]


def test_long_arguments_are_cut_and_bodies_that_are_not_model_calls_are_not_read() -> None:
    long = read_model_call("/v1/chat/completions", b'{"model": "m"}', orjson.dumps(
        {"choices": [{"message": {"tool_calls": [{"function": {
            "name": "f", "arguments": "x" * 5000}}]}}]}))
    assert long is not None
    assert len(long.tool_calls[0].arguments) == MAX_ARGUMENT_CHARS + 1
    assert read_model_call("/v1/chat/completions", b"not json", None) is None
    assert read_model_call("/v1/chat/completions", b'{"prompt": "no model"}', None) is None
    streamed = read_model_call("/v1/chat/completions", b'{"model": "m"}', None)
    assert streamed is not None and streamed.tool_calls == []
