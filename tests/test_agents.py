"""What a multi-agent system does, on ONE rotating model from the registry, against the stand-in.

For an OpenAI-style provider (groq) and for gemini: an Agno ``Agent`` with a Python tool run sync,
streamed and 16 times concurrently, and an Agno ``Team`` of two members sharing the model. The
stand-in answers with scripted tool calls (``StandIn.script_tool_call``), so Agno's tool loop runs
the real Python function and sends its result back; the stand-in's final text quotes that result.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from agno.agent import Agent
from agno.team import Team
from agno.team.mode import TeamMode
from conftest import provider_env

from hfs_core import Registry
from hfs_core.testing.standin import StandIn, ToolResult

PROVIDERS = ("groq", "gemini")
#: Keys per provider: gemini-2.5-flash allows 5 requests a minute per key, and 16 tool loops make 32.
KEYS = {"groq": 4, "gemini": 8}


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def numbers(text: str) -> dict[str, int]:
    """The tool arguments the stand-in sends: the two numbers in the user's message."""
    first, second = (int(n) for n in re.findall(r"\d+", text)[:2])
    return {"a": first, "b": second}


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def model(provider: str, standin: StandIn, make_registry: Callable[..., Registry], sqlite_url: str) -> Any:
    """One rotating model over the provider's KEYS, with the stand-in calling ``add`` whenever it is offered."""
    standin.script_tool_call("add", numbers)
    registry = make_registry(env=provider_env({provider: KEYS[provider]}, db_url=sqlite_url))
    return registry.get_model(provider, base_url=standin.url)


def adder(model: Any, name: str = "adder") -> Agent:
    return Agent(name=name, model=model, tools=[add], telemetry=False)


def keys_used(standin: StandIn) -> list[str]:
    return [label for label, counts in standin.stats()["by_key"].items() if counts.get("200")]


def test_agent_tool_loop_sync(model: Any, standin: StandIn) -> None:
    agent = adder(model)
    for a, b in ((20, 22), (1, 2), (30, 5)):
        out = agent.run(f"add {a} and {b}")
        assert out.content == f"stand-in reply: add {a} and {b} [add -> {a + b}]"
        assert [t.tool_name for t in out.tools or []] == ["add"]
    assert standin.tool_results() == [ToolResult("add", "42"), ToolResult("add", "3"), ToolResult("add", "35")]
    assert standin.stats()["tool_calls"] == 3 and standin.accepted == 6
    assert len(keys_used(standin)) >= 2, standin.stats()["by_key"]


def test_agent_tool_loop_streamed(model: Any, standin: StandIn) -> None:
    agent = adder(model)
    for a, b in ((7, 8), (10, 11), (2, 2)):
        events = agent.run(f"add {a} and {b}", stream=True)
        text = "".join(str(e.content) for e in events if getattr(e, "event", "") == "RunContent" and e.content)
        assert text == f"stand-in reply: add {a} and {b} [add -> {a + b}]"
    assert standin.tool_results() == [ToolResult("add", "15"), ToolResult("add", "21"), ToolResult("add", "4")]
    stats = standin.stats()
    assert stats["streams"] == 6 and stats["tool_calls"] == 3
    assert len(keys_used(standin)) >= 2, stats["by_key"]


async def test_sixteen_concurrent_agents_share_one_model(model: Any, standin: StandIn) -> None:
    standin.latency = 0.05  # keeps calls overlapping, so the pool has to hand out several keys
    outs = await asyncio.wait_for(
        asyncio.gather(*(adder(model, f"adder-{i}").arun(f"add {i} and 100") for i in range(16))), timeout=120
    )
    assert [o.content for o in outs] == [f"stand-in reply: add {i} and 100 [add -> {i + 100}]" for i in range(16)]
    assert sorted(r.content for r in standin.tool_results()) == sorted(str(i + 100) for i in range(16))
    assert standin.accepted == 32 and standin.stats()["tool_calls"] == 16
    assert len(keys_used(standin)) >= 2, standin.stats()["by_key"]


def test_team_of_two_members_shares_one_model(model: Any, standin: StandIn) -> None:
    standin.script_tool_call("delegate_task_to_members", lambda text: {"task": text})
    team = Team(
        name="calculators",
        members=[adder(model, "first adder"), adder(model, "second adder")],
        model=model,
        mode=TeamMode.broadcast,
        telemetry=False,
    )
    out = team.run("add 3 and 4")
    answer = str(out.content)
    assert answer.startswith("stand-in reply: add 3 and 4 [delegate_task_to_members -> "), answer
    assert answer.count("[add -> 7]") == 2, answer
    results = standin.tool_results()
    assert [r for r in results if r.name == "add"] == [ToolResult("add", "7")] * 2
    assert [r.name for r in results].count("delegate_task_to_members") == 1
    # leader: delegate call + final answer; each member: add call + final answer
    assert standin.accepted == 6 and standin.stats()["tool_calls"] == 3
    assert len(keys_used(standin)) >= 2, standin.stats()["by_key"]
