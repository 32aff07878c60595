"""KV throughput of the flo Python SDK, compared with Redis through a minimal RESP client.

Runs, from one Python process, KV put and get with 1 and with 50 concurrent
asyncio tasks sharing one client, against:

* a flo server (``$FLO_BIN``, else ``<repo>/bin/flo``, else ``go build``) in a temp
  dir, default (``sync``) durability, and optionally ``interval`` durability;
* ``redis-server`` (if installed) on a free port with ``appendonly yes``
  (``appendfsync everysec``), through ``RespClient`` below — the same
  pipelining design as the flo client (one connection, FIFO of futures, one
  reader task), so the comparison measures servers and protocol, not client
  cleverness.

Usage::

    python3 clients/python/benches/kv_bench.py [--seconds 3] [--value-size 100] [--keys 1000]

Prints one line per case: ``target op tasks=N ops/s``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Awaitable, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, SRC)
sys.path.insert(0, os.path.join(os.path.dirname(HERE)))

from flo import FloClient  # noqa: E402
from tests.harness import ServerProcess, flo_binary  # noqa: E402


# --- A minimal RESP2 client ---------------------------------------------------------------


class RespError(Exception):
    pass


class RespClient:
    """Just enough RESP2 for SET and GET, pipelined over one connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._pending: collections.deque[asyncio.Future[object]] = collections.deque()
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def close(self) -> None:
        self._task.cancel()
        self._writer.close()

    @staticmethod
    def _encode(*parts: bytes) -> bytes:
        out = [b"*%d\r\n" % len(parts)]
        for p in parts:
            out.append(b"$%d\r\n%s\r\n" % (len(p), p))
        return b"".join(out)

    async def command(self, *parts: bytes) -> object:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append(fut)
        # Same write coalescing as the flo client: one send per event-loop iteration.
        self._wbuf.append(self._encode(*parts))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._writer.write(b"".join(self._wbuf))
        self._wbuf.clear()

    async def set(self, key: bytes, value: bytes) -> None:
        await self.command(b"SET", key, value)

    async def get(self, key: bytes) -> Optional[bytes]:
        v = await self.command(b"GET", key)
        return v if isinstance(v, bytes) else None

    async def _read_value(self) -> object:
        line = await self._reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = await self._reader.readexactly(n + 2)
            return data[:-2]
        if kind == b"*":
            return [await self._read_value() for _ in range(int(rest))]
        raise RespError(f"unexpected reply {line!r}")

    async def _read_loop(self) -> None:
        while True:
            v = await self._read_value()
            fut = self._pending.popleft()
            if fut.done():
                continue
            if isinstance(v, RespError):
                fut.set_exception(v)
            else:
                fut.set_result(v)


# --- Servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="flo-bench-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Workload ---------------------------------------------------------------------------


async def measure(op: Callable[[int], Awaitable[object]], tasks: int, seconds: float) -> tuple[float, float]:
    """Run ``op(i)`` in a loop from ``tasks`` tasks for ``seconds``.

    Returns (ops/s, this process's CPU seconds per op): the second number is
    the client's own cost, which shows whether the SDK or the server limits
    the rate (the client saturates one core at 1 / cpu_per_op ops/s).
    """
    deadline = time.perf_counter() + seconds
    counts = [0] * tasks

    async def loop(t: int) -> None:
        i = t
        while time.perf_counter() < deadline:
            await op(i)
            counts[t] += 1
            i += tasks

    start = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(loop(t) for t in range(tasks)))
    ops = sum(counts)
    return ops / (time.perf_counter() - start), (time.process_time() - cpu0) / max(ops, 1)


async def bench_target(name: str, put: Callable[[bytes, bytes], Awaitable[object]],
                       get: Callable[[bytes], Awaitable[object]], args: argparse.Namespace) -> list[dict]:
    value = b"v" * args.value_size
    keys = [f"bench:{i}".encode() for i in range(args.keys)]
    rows = []
    for i, k in enumerate(keys):  # warm up and make every get a hit
        await put(k, value)
    for opname, op in (("put", lambda i: put(keys[i % len(keys)], value)), ("get", lambda i: get(keys[i % len(keys)]))):
        for tasks in args.tasks:
            rate, cpu = await measure(op, tasks, args.seconds)
            rows.append({"target": name, "op": opname, "tasks": tasks, "ops_per_s": round(rate),
                         "client_cpu_us_per_op": round(cpu * 1e6, 1)})
            print(f"{name:14s} {opname:3s} tasks={tasks:<3d} {rate:10.0f} ops/s   client CPU {cpu * 1e6:5.1f} us/op"
                  f" ({rate * cpu * 100:3.0f}% of a core)", flush=True)
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 50])
    ap.add_argument("--durability", nargs="+", default=["sync"], help="flo durability modes to run")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, flo binary {flo_binary()}, value {args.value_size} B, "
          f"{args.keys} keys, {args.seconds}s per case", flush=True)
    rows: list[dict] = []
    for mode in args.durability:
        server = ServerProcess()
        try:
            if mode != "sync":
                server_args = ["--durability", mode]
                addr = start_with(server, server_args)
            else:
                addr = server.start()
            async with FloClient(addr, timeout_ms=10000) as client:
                rows += await bench_target(f"flo({mode})", client.kv.put, client.kv.get, args)
        finally:
            server.cleanup()
    if shutil.which("redis-server"):
        redis = Redis()
        try:
            rc = RespClient("127.0.0.1", redis.port)
            await rc.connect()
            rows += await bench_target("redis(aof)", rc.set, rc.get, args)
            await rc.close()
        finally:
            redis.stop()
    else:
        print("redis-server not installed: skipping the Redis comparison", flush=True)
    for target in sorted({r["target"] for r in rows}):
        for op in ("put", "get"):
            by = {r["tasks"]: r["ops_per_s"] for r in rows if r["target"] == target and r["op"] == op}
            if 1 in by and 50 in by and by[1]:
                print(f"{target:14s} {op:3s} 50 tasks / 1 task = {by[50] / by[1]:.1f}x")
    if args.json:
        print(json.dumps(rows, indent=1))


def start_with(server: ServerProcess, extra: list[str]) -> str:
    """Start ``server`` with extra flags (ServerProcess.start has a fixed flag set)."""
    import uuid

    ready = os.path.join(server.data_dir, f"ready-{uuid.uuid4().hex}")
    server.proc = subprocess.Popen(
        [flo_binary(), "server", "start", "--listen", "127.0.0.1:0", "--data-dir",
         os.path.join(server.data_dir, "data"), "--ready-file", ready, "--log-level", "warn", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            text = open(ready).read()
            if text.endswith("\n"):
                server.addr = text.strip()
                return server.addr
        time.sleep(0.01)
    raise RuntimeError("flo server did not start")


if __name__ == "__main__":
    asyncio.run(main())
