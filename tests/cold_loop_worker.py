"""A process whose first model calls are 24 at once on a fresh event loop, as an application that
builds Agents from async code makes them.

``python tests/cold_loop_worker.py URL SHAPE``: builds a registry for the groq keys in the environment
and its pool (so everything is imported), then in a fresh event loop 24 tasks each obtain a model with
``await asyncio.to_thread(registry.get_model, ...)`` (SHAPE ``each``: a model each; ``shared``: one
task's model for all) and call it. Prints one JSON line: the calls' outcomes, and what the event
loop's thread did that blocks it on a cold process (audit events: files opened, modules imported,
code compiled) while the calls ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from typing import Any

os.environ.setdefault("AGNO_TELEMETRY", "false")

from agno.models.message import Message

from hfs_core import Registry

MODEL = "openai/gpt-oss-20b"
WATCHED = ("open", "import", "compile", "exec")
on_loop: list[str] = []
loop_thread: list[int] = []


def audit(event: str, args: tuple[Any, ...]) -> None:
    if event in WATCHED and loop_thread and threading.get_ident() == loop_thread[0]:
        on_loop.append(f"{event} {str(args[0])[:120] if args else ''}")


async def calls(registry: Registry, url: str, shared: bool) -> dict[str, int]:
    first: asyncio.Future[Any] | None = None

    async def model() -> Any:
        nonlocal first
        if not shared:
            return await asyncio.to_thread(registry.get_model, "groq", MODEL, base_url=url)
        if first is None:
            first = asyncio.ensure_future(asyncio.to_thread(registry.get_model, "groq", MODEL, base_url=url))
        return await first

    async def one() -> str:
        try:
            await (await model()).aresponse(messages=[Message(role="user", content="hi")])
            return "ok"
        except Exception as exc:
            return type(exc).__name__

    loop_thread.append(threading.get_ident())
    try:
        outcomes = await asyncio.gather(*(one() for _ in range(24)))
    finally:
        loop_thread.clear()
    return {outcome: outcomes.count(outcome) for outcome in set(outcomes)}


def main() -> None:
    url, shape = sys.argv[1:3]
    registry = Registry(plugins=["groq"])
    registry.pool("groq")
    import concurrent.futures.thread  # noqa: F401  (the application's own first asyncio.to_thread imports it)

    sys.addaudithook(audit)
    try:
        outcomes = asyncio.run(calls(registry, url, shape == "shared"))
    finally:
        registry.shutdown()
    print(json.dumps({"outcomes": outcomes, "on_loop": on_loop}), flush=True)


if __name__ == "__main__":
    main()
