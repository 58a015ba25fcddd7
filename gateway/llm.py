"""Model calls as evidence: what an agent asked an LLM API and which tool calls came back.

An incident's agent layer needs the model call that produced the harmful tool call: the model,
its temperature, the tools it was offered and the tool calls in its answer. OpenAI-style
(`/chat/completions`, `/responses`) and Anthropic-style (`/messages`) JSON bodies are read;
anything else is not a model call. Tool-call arguments are kept bounded: this is evidence of
what the model decided, not a copy of the conversation (the bodies themselves may be kept as
evidence files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_ARGUMENT_CHARS = 2000
LLM_PATHS = ("/chat/completions", "/completions", "/responses", "/messages")


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # as the model wrote them (JSON text), cut to MAX_ARGUMENT_CHARS

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class ModelCall:
    api: str  # `openai` or `anthropic`
    model: str | None
    temperature: float | None
    tools: list[str] = field(default_factory=list)  # names of the tools offered
    tool_calls: list[ToolCall] = field(default_factory=list)  # in the answer

    def to_json(self) -> dict[str, object]:
        return {"api": self.api, "model": self.model, "temperature": self.temperature,
                "tools": self.tools, "tool_calls": [c.to_json() for c in self.tool_calls]}


def is_model_call(path: str, method: str) -> bool:
    return method == "POST" and path.split("?", 1)[0].rstrip("/").endswith(LLM_PATHS)


def read_model_call(path: str, request_body: bytes, response_body: bytes | None
                    ) -> ModelCall | None:
    """The model call in this exchange, or None when the request is not one."""
    request = _json(request_body)
    if not isinstance(request, dict) or not isinstance(request.get("model"), str):
        return None
    api = "anthropic" if path.split("?", 1)[0].rstrip("/").endswith("/messages") else "openai"
    temperature = request.get("temperature")
    return ModelCall(
        api=api, model=request["model"],
        temperature=float(temperature) if isinstance(temperature, int | float) else None,
        tools=_tool_names(request.get("tools")),
        tool_calls=_tool_calls(_json(response_body) if response_body else None))


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _tool_names(tools: object) -> list[str]:
    """OpenAI `{"type": "function", "function": {"name"}}`, its Responses API `{"name"}`,
    Anthropic `{"name"}`."""
    names = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def _tool_calls(answer: object) -> list[ToolCall]:
    if not isinstance(answer, dict):
        return []
    calls: list[ToolCall] = []
    for choice in _list(answer.get("choices")):  # OpenAI chat completions
        message = choice.get("message") if isinstance(choice, dict) else None
        for call in _list(message.get("tool_calls") if isinstance(message, dict) else None):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                calls += _call(function.get("name"), function.get("arguments"))
    for item in _list(answer.get("output")):  # OpenAI Responses API
        if isinstance(item, dict) and item.get("type") == "function_call":
            calls += _call(item.get("name"), item.get("arguments"))
    for block in _list(answer.get("content")):  # Anthropic messages
        if isinstance(block, dict) and block.get("type") == "tool_use":
            calls += _call(block.get("name"), block.get("input"))
    return calls


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _call(name: object, arguments: object) -> list[ToolCall]:
    if not isinstance(name, str):
        return []
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    if len(text) > MAX_ARGUMENT_CHARS:
        text = text[:MAX_ARGUMENT_CHARS] + "…"
    return [ToolCall(name, text)]
