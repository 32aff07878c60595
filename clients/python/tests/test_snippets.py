"""Run every ```python block of the product spec and of the SDK README against a live server.

Rules (from issue 6):

* The code runs unchanged; the only substitution is the server address
  ``localhost:9000`` → the test server's address.
* Blocks of one document run in order and share one globals dict, like cells
  of a notebook (the spec's Status block uses the ``result`` of the Invoke
  block, its Error Handling block the ``PutOptions`` imported earlier).
* The harness supplies only names a block leaves undefined (``client``,
  ``payload``, ``process``, ``process_in_chunks``, ``process_chunk``,
  ``process_image``, ``task``) and may put data in place first: a key a
  blocking get waits for, a message a dequeue takes, an action a worker needs.
  Setup runs between the blank-line separated paragraphs of a block (each
  paragraph of the spec is a separate example under its own comment).
* Blocks with top-level ``await`` run in this test's event loop; blocks that
  call ``asyncio.run(...)`` run in a subprocess. An endless block (the worker
  lifecycle example) must still be running, without a traceback, when the
  harness has seen it do its work; it is then killed.
* Any exception fails the test.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import re
import sys
import textwrap
import time
import traceback
import unittest
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from .harness import REPO, SDK_ROOT, SRC, ServerTestCase
from flo import (
    ActionType,
    FloClient,
    NackOptions,
    NotFoundError,
    RunStatus,
    WorkerAwaitOptions,
)

SHARED = os.environ.get("FLO_SHARED_DIR") or os.path.join(REPO, "..", "shared")
SPEC_README = os.path.join(SHARED, "spec", "python-sdk-readme.md")
SDK_README = os.path.join(SDK_ROOT, "README.md")
ADDRESS = "localhost:9000"
PARAGRAPH_TIMEOUT = 45.0


@dataclass
class Block:
    heading: str
    code: str
    line: int


def python_blocks(path: str) -> list[Block]:
    """Extract the ```python fenced blocks of a Markdown file, with their nearest heading."""
    blocks: list[Block] = []
    heading = ""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("#"):
            heading = ln.lstrip("#").strip()
        if ln.strip().startswith("```python"):
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append(Block(heading, "\n".join(lines[start:j]) + "\n", start + 1))
            i = j
        i += 1
    return blocks


def paragraphs(code: str) -> list[str]:
    """Split a block at blank lines into independently runnable paragraphs.

    A paragraph that starts indented (or with except/else/elif/finally) or
    that does not compile on its own is merged with its neighbours.
    """
    raw = re.split(r"\n\s*\n", code.strip("\n"))
    out: list[str] = []
    for chunk in raw:
        first = chunk.lstrip("\n").split("\n", 1)[0]
        continues = first[:1].isspace() or re.match(r"(except|else|elif|finally)\b", first)
        if out and (continues or not _compiles(out[-1])):
            out[-1] = out[-1] + "\n\n" + chunk
        else:
            out.append(chunk)
    while len(out) > 1 and not _compiles(out[-1]):
        last = out.pop()
        out[-1] += "\n\n" + last
    return [p + "\n" for p in out]


def _compiles(src: str) -> bool:
    try:
        compile(src, "<p>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return True
    except SyntaxError:
        return False


# --- names the harness supplies -------------------------------------------------------

SUPPLIED_SOURCE = '''
payload = b'{"image_url": "https://example.com/image.jpg"}'

def process(data):
    """Stand-in for user work: returns result bytes."""
    return b"processed:" + bytes(data or b"")

def process_in_chunks(data):
    data = bytes(data or b"")
    return [data[i:i + 8] for i in range(0, max(len(data), 1), 8)]

async def process_chunk(chunk):
    return None

async def process_image(data):
    return b"processed:" + bytes(data or b"")
'''


def supplied_names() -> dict[str, Any]:
    g: dict[str, Any] = {}
    exec(SUPPLIED_SOURCE, g)
    g.pop("__builtins__", None)
    return g


Setup = Callable[["SnippetRunner"], Awaitable[None]]


class SnippetRunner:
    """Runs the blocks of one document against one server."""

    def __init__(self, test: ServerTestCase, doc: str, hooks: list[tuple[str, Setup]]) -> None:
        self.test = test
        self.doc = doc
        self.hooks = hooks
        self.addr = test.addr
        self.admin = FloClient(self.addr)  # the harness's own client, namespace "default"
        self.globals: dict[str, Any] = {"__name__": "__snippet__"}
        self.globals.update(supplied_names())
        self.globals["client"] = FloClient(self.addr)
        self.output = io.StringIO()
        self.watch: Optional[Callable[[], Awaitable[bool]]] = None
        self.clients: list[FloClient] = [self.globals["client"]]

    def substitute(self, code: str) -> str:
        return code.replace(ADDRESS, self.addr)

    async def run_all(self) -> None:
        blocks = python_blocks(self.doc)
        self.test.assertTrue(blocks, f"no python blocks in {self.doc}")
        for block in blocks:
            with self.test.subTest(doc=os.path.basename(self.doc), line=block.line, heading=block.heading):
                try:
                    await self.run_block(block)
                except AssertionError:
                    raise
                except BaseException as e:  # noqa: BLE001 - report any exception as a failure
                    self.test.fail(
                        f"{os.path.basename(self.doc)}:{block.line} ({block.heading}) raised "
                        f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
                    )
        for c in self.clients:
            await c.close()
        await self.admin.close()

    async def run_block(self, block: Block) -> None:
        code = self.substitute(block.code)
        if "asyncio.run(" in code:
            await self.setup_for(code)
            await self.run_subprocess(block, code)
            # As in a notebook, the block's top-level imports are now defined for later blocks.
            tree = ast.parse(code)
            imports = ast.Module([n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], [])
            exec(compile(imports, "<imports>", "exec"), self.globals)  # noqa: S102
            return
        for para in paragraphs(code):
            await self.setup_for(para)
            compiled = compile(para, f"{os.path.basename(self.doc)}:{block.line}", "exec",
                               flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            with contextlib.redirect_stdout(self.output):
                result = eval(compiled, self.globals)  # noqa: S307 - running the documented examples is the point
                try:
                    if asyncio.iscoroutine(result):
                        await asyncio.wait_for(result, PARAGRAPH_TIMEOUT)
                finally:
                    for v in self.globals.values():
                        if isinstance(v, FloClient) and v not in self.clients:
                            self.clients.append(v)

    async def setup_for(self, code: str) -> None:
        for marker, setup in self.hooks:
            if marker in code:
                await setup(self)

    async def run_subprocess(self, block: Block, code: str) -> None:
        source = SUPPLIED_SOURCE + "\n" + code
        env = dict(os.environ)
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", source, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        endless = re.search(r"^\s*while True:", code, re.M) is not None
        if not endless:
            try:
                out, err = await asyncio.wait_for(proc.communicate(), PARAGRAPH_TIMEOUT)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                self.test.fail(f"block at line {block.line} did not finish within {PARAGRAPH_TIMEOUT}s")
            self.test.assertEqual(proc.returncode, 0, f"block at line {block.line} failed:\n{err.decode()}")
            self.output.write(out.decode())
            return
        # Endless: it must keep running, and the harness's watch must see its work done.
        watch = self.watch
        self.watch = None
        deadline = time.monotonic() + 20
        done = False
        try:
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    break
                if watch is None or await watch():
                    done = True
                    await asyncio.sleep(1.5 if watch is None else 0.5)  # keep looping a little
                    break
                await asyncio.sleep(0.1)
            still_running = proc.returncode is None
        finally:
            if proc.returncode is None:
                proc.kill()
            out, err = await proc.communicate()
        self.test.assertTrue(still_running, f"endless block at line {block.line} exited:\n{err.decode()}")
        self.test.assertNotIn("Traceback", err.decode(), err.decode())
        self.test.assertTrue(done, f"endless block at line {block.line} did not do its work in time")


# --- data the spec's examples need ---------------------------------------------------------------


async def put_key(r: SnippetRunner) -> None:
    await r.admin.kv.put("key", b"value")


async def counter_at_version_1(r: SnippetRunner) -> None:
    try:
        hist = await r.admin.kv.history("counter")
    except NotFoundError:
        hist = []
    if not hist:
        await r.admin.kv.put("counter", b"1")
    r.test.assertEqual((await r.admin.kv.history("counter"))[0].version, 1, "counter must be fresh")


async def delete_key(r: SnippetRunner) -> None:
    await r.admin.kv.delete("key")


async def enqueue_task(r: SnippetRunner) -> None:
    await r.admin.queue.enqueue("tasks", b'{"task": "from-harness"}')


async def fill_dlq(r: SnippetRunner) -> None:
    await r.admin.queue.enqueue("tasks", b'{"task": "will-fail"}')
    res = await r.admin.queue.dequeue("tasks", 100)
    # Dead-letter one message, give the rest back.
    seqs = [m.seq for m in res.messages]
    if seqs:
        await r.admin.queue.nack("tasks", seqs[:1], NackOptions(to_dlq=True))
        await r.admin.queue.nack("tasks", seqs[1:])


async def stream_has_100(r: SnippetRunner) -> None:
    info = await r.admin.stream.info("events")
    for i in range(info.last_offset, 130):
        await r.admin.stream.append("events", f'{{"event": "harness", "n": {i}}}'.encode())


async def pending_image_task(r: SnippetRunner) -> None:
    await r.admin.action.register("process-image", ActionType.USER)
    await r.admin.action.invoke("process-image", b'{"image_url": "harness.jpg"}')


async def running_task(r: SnippetRunner) -> None:
    await pending_image_task(r)
    await r.admin.worker.register("worker-1", ["process-image"])
    res = await r.admin.worker.await_task("worker-1", ["process-image"], WorkerAwaitOptions(block_ms=5000))
    r.test.assertIsNotNone(res.task)
    r.globals["task"] = res.task


async def lifecycle_watch(r: SnippetRunner) -> None:
    await r.admin.action.register("process-image", ActionType.USER)
    run_id = (await r.admin.action.invoke("process-image", b'{"image_url": "lifecycle.jpg"}')).run_id

    async def done() -> bool:
        st = await r.admin.action.status(run_id)
        if st.status == RunStatus.COMPLETED:
            r.test.assertEqual(st.result, b'processed:{"image_url": "lifecycle.jpg"}')
            return True
        return False

    r.watch = done


SPEC_HOOKS: list[tuple[str, Setup]] = [
    ("GetOptions(block_ms=5000)", put_key),
    ("GetOptions(block_ms=0)", put_key),
    ('client.kv.put("counter", b"2", PutOptions(cas_version=1))', counter_at_version_1),
    ("PutOptions(if_not_exists=True)", delete_key),
    ('DequeueOptions(block_ms=30000)', enqueue_task),
    ('await client.queue.ack("tasks", [msg.seq])', enqueue_task),
    ('client.queue.dlq_list("tasks"', fill_dlq),
    ("msg = result.messages[0]", enqueue_task),
    ("StreamReadOptions(offset=100, block_ms=30000)", stream_has_100),
    ("StreamGroupReadOptions(count=10, block_ms=30000)", stream_has_100),
    ("result = await client.worker.await_task(", pending_image_task),
    ("WorkerTouchOptions(extend_ms=30000)", running_task),
    ("async def run_worker():", lifecycle_watch),
]


class SpecSnippetTest(ServerTestCase):
    """The product spec: ../shared/spec/python-sdk-readme.md."""

    async def test_spec_readme_snippets(self) -> None:
        if not os.path.exists(SPEC_README):
            self.skipTest(f"spec not found at {SPEC_README} (set FLO_SHARED_DIR)")
        runner = SnippetRunner(self, SPEC_README, SPEC_HOOKS)
        await runner.run_all()
        self.assertIn("Got: John Doe", runner.output.getvalue() + "")


class SDKReadmeSnippetTest(ServerTestCase):
    """The SDK's own README: its examples need no harness data at all."""

    async def test_sdk_readme_snippets(self) -> None:
        runner = SnippetRunner(self, SDK_README, [])
        await runner.run_all()


class ParagraphSplitTest(unittest.TestCase):
    def test_split_keeps_blocks_whole(self) -> None:
        code = textwrap.dedent(
            """\
            x = 1

            if x:
                y = 2

                z = 3

            for i in range(2):
                pass
            """
        )
        self.assertEqual(len(paragraphs(code)), 3)
