"""Scripted tool calls of the stand-in: `ToolScripts`, one part of its behaviours.

A tool named here is called whenever a request offers it and has not called it since the last
user message; the arguments are fixed or a function of that message's text.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hfs_core.testing.standin.exchange import Conversation, ToolCall

#: Tool-call arguments: a fixed mapping, or a function of the last user message text.
ToolArguments = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class _ToolScript:
    name: str
    arguments: ToolArguments

    def call(self, user_text: str) -> ToolCall:
        args = self.arguments(user_text) if callable(self.arguments) else self.arguments
        return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=self.name, arguments=dict(args))


class ToolScripts:
    """The tools the stand-in calls (a part of :class:`Behaviours`, under its lock)."""

    _lock: threading.Lock

    def _init_tool_scripts(self) -> None:
        self._tool_scripts: dict[str, _ToolScript] = {}

    def script_tool_call(self, name: str, arguments: ToolArguments | None = None) -> None:
        """Call tool ``name`` with ``arguments`` whenever a request offers it and has not called it yet.

        ``arguments`` is a mapping or a function of the last user message text (default ``{}``).
        Once the conversation holds the tool's result, the model answers with text instead: the
        reply followed by ``[name -> result]`` for each tool result since the last user message.
        Scripting a name again replaces its arguments.
        """
        with self._lock:
            self._tool_scripts[name] = _ToolScript(name, {} if arguments is None else arguments)

    def clear_tool_calls(self) -> None:
        """Forget every scripted tool call (requests get text answers again)."""
        with self._lock:
            self._tool_scripts.clear()

    def _due_tool_calls(self, conversation: Conversation) -> list[_ToolScript]:
        """The scripted tools ``conversation`` offers and has not called yet (lock held)."""
        return [
            script
            for name, script in self._tool_scripts.items()
            if name in conversation.tools and name not in conversation.called
        ]
