"""The stand-in's tool calls on the wire, through the real SDKs (groq, openai, google-genai)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import groq
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from hfs_core.testing.standin import StandIn, ToolResult

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
]
USER: Any = [{"role": "user", "content": "add 2 and 3"}]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        server.script_tool_call("add", {"a": 2, "b": 3})
        yield server


def groq_client(s: StandIn) -> groq.Groq:
    return groq.Groq(api_key="gsk_" + secrets.token_hex(20), base_url=s.url, max_retries=0)


def test_openai_style_tool_call_and_result(standin: StandIn) -> None:
    client = groq_client(standin)
    first = client.chat.completions.create(model="m", messages=USER, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 2, "b": 3}

    turn: Any = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "5"},
    ]
    second = client.chat.completions.create(model="m", messages=turn, tools=TOOLS)
    assert second.choices[0].message.content == "stand-in reply: add 2 and 3 [add -> 5]"
    assert second.choices[0].finish_reason == "stop"
    assert standin.tool_results() == [ToolResult("add", "5")]
    assert standin.stats()["tool_calls"] == 1 and standin.stats()["tool_results"] == 1


def test_groq_refuses_a_tool_call_field_it_does_not_know(standin: StandIn) -> None:
    client = groq_client(standin)
    [call] = client.chat.completions.create(model="m", messages=USER, tools=TOOLS).choices[0].message.tool_calls or []
    signed = {**call.model_dump(), "thought_signature": "c2lnbmVk"}  # as Agno keeps a Gemini call
    turn: Any = [*USER, {"role": "assistant", "content": None, "tool_calls": [signed]},
                 {"role": "tool", "tool_call_id": call.id, "content": "5"}]
    with pytest.raises(groq.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=turn, tools=TOOLS)
    assert caught.value.status_code == 400 and caught.value.body == {"error": {
        "message": "'messages.1' : for 'role:assistant' the following must be satisfied"
                   "[('messages.1.tool_calls.0' : property 'thought_signature' is unsupported)]",
        "type": "invalid_request_error", "code": "invalid_request"}}
    other = openai.OpenAI(api_key="sk-" + secrets.token_hex(20), base_url=standin.url, max_retries=0)
    answer = other.chat.completions.create(model="m", messages=turn, tools=TOOLS)  # only Groq's route is strict
    assert answer.choices[0].message.content == "stand-in reply: add 2 and 3 [add -> 5]"


def test_no_tool_call_unless_the_tool_is_offered(standin: StandIn) -> None:
    client = groq_client(standin)
    plain = client.chat.completions.create(model="m", messages=USER)
    assert plain.choices[0].message.content == "stand-in reply: add 2 and 3" and not plain.choices[0].message.tool_calls
    other: Any = [{"type": "function", "function": {"name": "mul", "parameters": {"type": "object"}}}]
    assert not client.chat.completions.create(model="m", messages=USER, tools=other).choices[0].message.tool_calls
    standin.clear_tool_calls()
    assert not client.chat.completions.create(model="m", messages=USER, tools=TOOLS).choices[0].message.tool_calls
    assert standin.stats()["tool_calls"] == 0


def test_streamed_tool_call_deltas(standin: StandIn) -> None:
    standin.script_tool_call("mul", lambda text: {"x": len(text)})
    tools = [*TOOLS, {"type": "function", "function": {"name": "mul", "parameters": {"type": "object"}}}]
    chunks = list(groq_client(standin).chat.completions.create(model="m", messages=USER, tools=tools, stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert deltas[0].role == "assistant"
    heads = [t for d in deltas for t in d.tool_calls or [] if t.id is not None]
    assert [(h.index, h.type, h.function and h.function.name, h.function and h.function.arguments) for h in heads] == [
        (0, "function", "add", ""),
        (1, "function", "mul", ""),
    ]
    fragments = [t for d in deltas for t in d.tool_calls or [] if t.id is None]
    assert all(t.type is None and t.function and t.function.name is None for t in fragments)
    assert len([t for t in fragments if t.index == 0]) >= 2  # the arguments really come in pieces
    joined = {i: "".join(t.function.arguments or "" for t in fragments if t.index == i and t.function) for i in (0, 1)}
    assert json.loads(joined[0]) == {"a": 2, "b": 3} and json.loads(joined[1]) == {"x": len("add 2 and 3")}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].x_groq is not None and chunks[-1].x_groq.usage is not None


def test_streamed_tool_call_with_usage_chunk(standin: StandIn) -> None:
    client = openai.OpenAI(api_key="sk-" + secrets.token_hex(20), base_url=standin.url, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=USER, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


def gemini_client(s: StandIn) -> genai.Client:
    key = "AIza" + secrets.token_hex(18)[:35]
    return genai.Client(api_key=key, http_options={"base_url": s.url, "retry_options": {"attempts": 1}})


GEMINI_TOOLS = [
    types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="add",
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"a": types.Schema(type=types.Type.INTEGER), "b": types.Schema(type=types.Type.INTEGER)},
                ),
            )
        ]
    )
]


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_function_call_and_response(standin: StandIn, stream: bool) -> None:
    client = gemini_client(standin)
    config = types.GenerateContentConfig(
        tools=GEMINI_TOOLS, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    ask = [types.Content(role="user", parts=[types.Part.from_text(text="add 2 and 3")])]
    if stream:
        [first] = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=ask, config=config))
    else:
        first = client.models.generate_content(model="gemini-2.5-flash", contents=ask, config=config)
    [call] = first.function_calls or []
    assert call.name == "add" and call.args == {"a": 2, "b": 3} and call.id is None
    [part] = first.candidates[0].content.parts if first.candidates and first.candidates[0].content else []
    assert part.function_call == call and part.thought_signature and len(part.thought_signature) == 32
    assert first.candidates and first.candidates[0].finish_reason == types.FinishReason.STOP

    turn = [
        *ask,
        types.Content(role="model", parts=[types.Part.from_function_call(name="add", args={"a": 2, "b": 3})]),
        types.Content(role="user", parts=[types.Part.from_function_response(name="add", response={"result": 5})]),
    ]
    second = client.models.generate_content(model="gemini-2.5-flash", contents=turn, config=config)
    assert second.text == "stand-in reply: add 2 and 3 [add -> 5]" and not second.function_calls
    assert standin.tool_results() == [ToolResult("add", "5")]
    assert standin.stats()["streams"] == int(stream)


def tool_calls(s: StandIn) -> list[Any]:
    response = groq_client(s).chat.completions.create(model="m", messages=USER, tools=TOOLS)
    return response.choices[0].message.tool_calls or []


def test_control_endpoint_scripts_tool_calls(standin: StandIn) -> None:
    standin.clear_tool_calls()
    control = f"{standin.url}/control"
    script = {"tool_calls": [{"name": "add", "arguments": {"a": 9, "b": 1}}]}
    assert httpx.post(control, json=script).json() == {"ok": True}
    [call] = tool_calls(standin)
    assert json.loads(call.function.arguments) == {"a": 9, "b": 1}
    assert httpx.post(control, json={"tool_calls": [{"name": "add", "arguments": 3}]}).status_code == 400
    assert httpx.post(control, json={"tool_calls": []}).json() == {"ok": True}
    assert tool_calls(standin) == []
    standin.script_tool_call("add")
    assert [c.function.arguments for c in tool_calls(standin)] == ["{}"]
    standin.reset()
    assert tool_calls(standin) == []


def test_cli_tool_call_flag() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfs_core.testing.standin", "--tool-call", 'add={"a": 4, "b": 4}'],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("STANDIN_URL=http://127.0.0.1:")
        url = line.removeprefix("STANDIN_URL=")
        client = groq.Groq(api_key="gsk_" + secrets.token_hex(20), base_url=url, max_retries=0)
        response = client.chat.completions.create(model="m", messages=USER, tools=TOOLS)
        [call] = response.choices[0].message.tool_calls or []
        assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 4, "b": 4}
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
