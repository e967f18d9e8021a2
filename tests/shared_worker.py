"""One worker process of the shared-state tests, run as a user's process would be.

``python tests/shared_worker.py load DURATION THREADS``: builds its ``get_model("groq")``,
prints ``ready`` and reads a start time (epoch seconds) from stdin; from then, for DURATION
seconds, THREADS threads share the model and call it again and again; prints one JSON line:
answers, refusals (`NoAvailableKeyError`) and other errors by type.

``python tests/shared_worker.py call``: one call, then prints ``done`` (the test kills it before).

The registry reads everything a user sets: the ``NUM_GROQ``/``GROQ_API_KEY_<i>`` keys,
``HFS_STATE_URL``, ``HFS_PLUGINS`` and the ``hfs.toml`` named by ``HFS_CONFIG``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

os.environ.setdefault("AGNO_TELEMETRY", "false")

from agno.models.message import Message

from hfs_core import NoAvailableKeyError, get_model, shutdown


def ask(model: Any) -> None:
    model.response(messages=[Message(role="user", content="hi")])


def load(duration: float, threads: int) -> dict[str, object]:
    model = get_model("groq", timeout=0.5)
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    counts: dict[str, int] = {"ok": 0, "no_key": 0}
    lock = threading.Lock()

    def work() -> None:
        while time.time() < start + duration:
            try:
                ask(model)
                kind = "ok"
            except NoAvailableKeyError:
                kind = "no_key"
                time.sleep(0.05)
            except Exception as exc:
                kind = type(exc).__name__
            with lock:
                counts[kind] = counts.get(kind, 0) + 1

    time.sleep(max(0.0, start - time.time()))
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    if sys.argv[1] == "load":
        counts = load(float(sys.argv[2]), int(sys.argv[3]))
        shutdown()
        print(json.dumps(counts), flush=True)
    else:
        ask(get_model("groq", timeout=5, estimated_tokens=1000))
        print("done", flush=True)


if __name__ == "__main__":
    main()
