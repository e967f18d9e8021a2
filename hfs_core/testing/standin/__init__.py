"""Local stand-in for LLM provider HTTP APIs (OpenAI-style chat completions and Gemini).

The server listens on ``127.0.0.1`` only and imitates the wire format of the real providers closely
enough that the unmodified SDKs (``groq``, ``cerebras-cloud-sdk``, ``openai``, ``google-genai``) and
the Agno models built on them work against it when their ``base_url`` points at :attr:`StandIn.url`.

One base URL serves every provider, because each SDK appends its own path:

* any ``POST .../chat/completions`` (groq: ``/openai/v1/chat/completions``, cerebras:
  ``/v1/chat/completions``, openai with ``base_url=url``: ``/chat/completions``); the key comes from
  ``Authorization: Bearer <key>``;
* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
  ``?alt=sse``); the key comes from ``x-goog-api-key`` or ``?key=``;
* ``GET /v1/tcp_warming`` (the cerebras SDK's connection warm-up; answered, never counted);
* ``GET /stats`` (the :meth:`StandIn.stats` JSON), ``GET /log?since=N`` (each request's time, key
  suffix and status: :meth:`StandIn.request_log`) and ``POST /control`` (JSON config changes, see
  :meth:`StandIn.control`).

Behaviour (latency, per-key sliding-window request limits, key states, injected faults, broken
streams, replies, tool calls) is configured through the thread-safe Python API of :class:`StandIn`,
also while it runs. Full API keys are never stored, logged or echoed: keys are kept as SHA-256
digests and reported by their last four characters only.

Tool calls: ``standin.script_tool_call("add", {"a": 2, "b": 3})`` (arguments may also be a function
of the last user message text) makes every request that offers a tool named ``add`` (OpenAI
``tools[].function.name``, Gemini ``tools[].functionDeclarations[].name``) and has not called it since
the last user message answer with a call to it: ``message.tool_calls`` with ``finish_reason
"tool_calls"`` (streamed as tool-call deltas) or a Gemini ``functionCall`` part. Once the tool's
result comes back, the answer is text: the reply followed by ``[add -> 5]`` for each tool result of
the turn, so a test can see that the tool really ran; :meth:`StandIn.tool_results` lists the
results received. Several scripted tools offered together are called in one turn (parallel calls).
:meth:`StandIn.clear_tool_calls` or :meth:`StandIn.reset` stop it.

Recorded provider failures: :data:`RECORDED` holds real error replies of the four providers (status,
headers, verbatim JSON body, ``source`` and ``confidence``; see :mod:`.recorded`). ``standin.replay(key,
"gemini.invalid_key")`` answers every request on ``key`` with it until :meth:`StandIn.clear_replays`
(``times=N``: the next N requests); ``standin.replay_all("cerebras.queue_exceeded", times=3)`` does it
for any key (a key's own replays come first); ``wait=`` seconds fills the time-dependent values
(Retry-After, ``retryDelay``, Groq's "Please try again in 7.66s", OpenRouter's ``X-RateLimit-Reset``),
which otherwise are the recorded ones (OpenRouter's reset: the next whole minute, or the next midnight
UTC for the daily limit). In-stream entries (``*.stream_error``) answer streaming requests
only: a 200 stream whose recorded error event comes before any content chunk (``after_chunks=N``: after
N). The reply is sent as recorded, with no stand-in headers; ``stats()["replayed"]`` counts replies by
name and :meth:`StandIn.requests_for` by key. A reply due on a route of the other wire format (a Gemini
entry on ``/chat/completions``) is the test's mistake: it is answered 500 ``stand-in misuse: ...`` in
plain text and listed in ``stats()["replay_errors"]``.

Modules: :mod:`.server` (the :class:`StandIn` object) and :mod:`.stats` (what it has seen),
:mod:`.behaviours` (replies, and the parts below put together), :mod:`.keys` (key states and rate
limits), :mod:`.faults` (injected failures, broken streams), :mod:`.replays` (recorded replies due),
:mod:`.tool_scripts` (scripted tool calls), :mod:`.openai` and :mod:`.gemini` (the wire formats),
:mod:`.recorded` (the recorded failures), :mod:`.handler` (the HTTP server), :mod:`.exchange` (the
values they pass), :mod:`.cli`.

Run it in the foreground with ``python -m hfs_core.testing.standin --port 0``; it prints one line
``STANDIN_URL=http://127.0.0.1:<port>`` when ready and serves until SIGTERM/SIGINT.
"""

from hfs_core.testing.standin.behaviours import Reply
from hfs_core.testing.standin.cli import main
from hfs_core.testing.standin.exchange import ToolResult, key_label
from hfs_core.testing.standin.keys import KEY_STATUSES
from hfs_core.testing.standin.recorded import RECORDED, Recorded
from hfs_core.testing.standin.server import StandIn

__all__ = ["KEY_STATUSES", "RECORDED", "Recorded", "Reply", "StandIn", "ToolResult", "key_label", "main"]
