"""The real servers the tests use (MariaDB on 127.0.0.1:3306, Redis on 127.0.0.1:6379), the marks
that skip a test when one does not answer, and `TcpProxy`, which stands between a client and a
server so a test can cut, stall and restore the line without touching the shared server."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

MARIADB = ("127.0.0.1", 3306)
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
REDIS = ("127.0.0.1", 6379)
REDIS_URL = "redis://127.0.0.1:6379/0"


def answers(address: tuple[str, int]) -> bool:
    """Whether a TCP server accepts connections at `address`."""
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


needs_mariadb = pytest.mark.skipif(
    not answers(MARIADB),
    reason="no MariaDB server answers on 127.0.0.1:3306 (.ci/services installs and starts it in CI)",
)
needs_redis = pytest.mark.skipif(
    not answers(REDIS),
    reason="no Redis server answers on 127.0.0.1:6379 (.ci/services installs and starts it in CI)",
)


def drop_namespace(namespace: str, url: str = REDIS_URL) -> None:
    """Delete every Redis key of `namespace` (a test's own) from the Redis at `url`."""
    import redis

    client = redis.Redis.from_url(url)
    names = list(client.scan_iter(match=f"{{{namespace}:*", count=1000))
    if names:
        client.delete(*names)
    client.close()


@contextlib.contextmanager
def redis_namespace() -> Iterator[str]:
    """A fresh namespace of the shared Redis, deleted at the end."""
    name = f"hfs-test-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        drop_namespace(name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of `target`.

    `cut` drops every open connection and refuses new ones at once, as a host that went down
    would; `stall` keeps connections open but forwards nothing (a server that hangs); `restore`
    lets traffic through again.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._up = True
        self._stalled = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, user: str = "root") -> str:
        """A MariaDB URL through the proxy."""
        return f"mysql+pymysql://{user}@127.0.0.1:{self.port}/test"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._up = False
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            self._drop(sock)

    def stall(self) -> None:
        """Keep connections open (and accept new ones) but forward nothing."""
        self._flowing.clear()

    def restore(self) -> None:
        """Let traffic through again."""
        self._up = True
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.cut()
        self._listener.close()
