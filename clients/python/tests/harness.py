"""Test support: locate/build the flo binary, run real servers, fake servers, a TCP proxy.

Tests import this module first; it puts ``clients/python/src`` on ``sys.path``
so the suite runs from a source checkout without installing the package.
"""

from __future__ import annotations

import asyncio
import atexit
import faulthandler
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from typing import Awaitable, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_ROOT = os.path.dirname(HERE)
SRC = os.path.join(SDK_ROOT, "src")
REPO = os.path.dirname(os.path.dirname(SDK_ROOT))
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from flo import FloClient, wire  # noqa: E402

_built_binary: Optional[str] = None


def _newest_go_source() -> float:
    newest = 0.0
    for top in ("cmd", "internal", "wire"):
        for dirpath, _, files in os.walk(os.path.join(REPO, top)):
            for fn in files:
                if fn.endswith(".go") or fn in ("go.mod", "go.sum"):
                    newest = max(newest, os.path.getmtime(os.path.join(dirpath, fn)))
    for fn in ("go.mod", "go.sum"):
        path = os.path.join(REPO, fn)
        if os.path.exists(path):
            newest = max(newest, os.path.getmtime(path))
    return newest


def flo_binary() -> str:
    """``$FLO_BIN``, else ``<repo>/bin/flo``, else a fresh ``go build`` into a temp dir.

    ``bin/flo`` is skipped when Go sources are newer than it and ``go`` is
    available, so a stale build never runs the suite.
    """
    global _built_binary
    env = os.environ.get("FLO_BIN")
    if env:
        return env
    candidate = os.path.join(REPO, "bin", "flo")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        if shutil.which("go") is None or os.path.getmtime(candidate) >= _newest_go_source():
            return candidate
    if _built_binary is None:
        out_dir = tempfile.mkdtemp(prefix="flo-bin-")
        atexit.register(shutil.rmtree, out_dir, True)
        out = os.path.join(out_dir, "flo")
        subprocess.run(["go", "build", "-o", out, "./cmd/flo"], cwd=REPO, check=True)
        _built_binary = out
    return _built_binary


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it if the test process dies (e.g. the hang watchdog)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; not Linux
        pass


class ServerProcess:
    """A real flo server on 127.0.0.1 in its own data dir."""

    def __init__(self, data_dir: Optional[str] = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="flo-py-test-")
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.addr = ""
        self.log_path = os.path.join(self.data_dir, "server.log")

    def start(self, listen: str = "127.0.0.1:0", timeout: float = 20.0) -> str:
        """Start the server and return its bound ``host:port`` (read from the ready file)."""
        ready = os.path.join(self.data_dir, f"ready-{uuid.uuid4().hex}")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                flo_binary(), "server", "start",
                "--listen", listen,
                "--data-dir", os.path.join(self.data_dir, "data"),
                "--ready-file", ready,
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(ready):
                with open(ready) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.addr = text.strip()
                    return self.addr
            if self.proc.poll() is not None:
                raise RuntimeError(f"flo server exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"flo server did not become ready within {timeout}s: {self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


#: Hard limit for one test: a hang dumps every thread's traceback and exits,
#: rather than stalling CI until its own timeout.
TEST_TIMEOUT_S = float(os.environ.get("FLO_PY_TEST_TIMEOUT", "180"))


class AsyncTestCase(unittest.IsolatedAsyncioTestCase):
    """IsolatedAsyncioTestCase without asyncio debug mode, with a hang watchdog.

    Debug mode records a traceback for every callback and task, which slows a
    pipelined client several-fold and turns timing tests into CPU tests.
    """

    def setUp(self) -> None:
        faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True)

    def tearDown(self) -> None:
        faulthandler.cancel_dump_traceback_later()

    async def asyncSetUp(self) -> None:
        asyncio.get_running_loop().set_debug(False)


class ServerTestCase(AsyncTestCase):
    """One real server per test class; each test gets a client in a fresh namespace."""

    server: ServerProcess
    addr: str
    client_timeout_ms = 5000

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.server = ServerProcess()
        cls.addr = cls.server.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.cleanup()
        super().tearDownClass()

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.ns = unique("ns")
        self.client = FloClient(self.addr, namespace=self.ns, timeout_ms=self.client_timeout_ms)
        await self.client.connect()

    async def asyncTearDown(self) -> None:
        await self.client.close()

    def new_client(self, **kw: object) -> FloClient:
        kw.setdefault("namespace", self.ns)
        return FloClient(self.addr, **kw)  # type: ignore[arg-type]


# --- A scriptable fake server --------------------------------------------------------

Handler = Callable[[wire.Header, wire.Envelope], Awaitable[Optional[bytes]]]


class FakeServer:
    """An asyncio TCP server that parses request frames and lets a test script the replies.

    ``handler(header, envelope)`` returns the raw bytes to send (use
    ``wire.encode_response``) or ``None`` to send nothing. Replies are written
    in request order per connection.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: Optional[asyncio.base_events.Server] = None
        self.addr = ""
        self.requests: list[tuple[wire.Header, wire.Envelope]] = []
        self.raw: list[bytes] = []
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.addr = f"127.0.0.1:{port}"
        return self.addr

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readexactly(wire.HEADER_SIZE)
                h = wire.decode_header(head)
                payload = await reader.readexactly(h.length)
                env = wire.decode_envelope(payload)
                self.requests.append((h, env))
                self.raw.append(head + payload)
                out = await self.handler(h, env)
                if out:
                    writer.write(out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def drop_all(self) -> None:
        for w in self._writers:
            w.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Proxy:
    """A TCP proxy to a real server whose client connections a test can drop."""

    def __init__(self, target: str) -> None:
        self.target_host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.server: Optional[asyncio.base_events.Server] = None
        self.addr = ""
        self._writers: list[asyncio.StreamWriter] = []
        self.accepted = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.addr = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self.addr

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            ur, uw = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers += [writer, uw]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))

    def drop_all(self) -> None:
        for w in self._writers:
            w.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
