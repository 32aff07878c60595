"""The SDK against the golden frames in wire/testdata, byte for byte.

Each request file is reproduced by the public API call it describes (the
client's request id is set to the file's), captured by a fake server and
compared byte-exact; each response file is fed back to the client (or to the
wire decoders) and the decoded result is checked. Every v1 file, known or not,
must also decode and re-encode unchanged.
"""

from __future__ import annotations

import glob
import itertools
import os
import unittest
from typing import Any, Awaitable, Callable, Optional

from .harness import AsyncTestCase, FakeServer
from .test_wire import TESTDATA, load_hex
from flo import (
    ActionInvokeOptions,
    ActionListOptions,
    ActionRegisterOptions,
    ActionType,
    DequeueOptions,
    DlqListOptions,
    EnqueueOptions,
    FloClient,
    NackOptions,
    StreamAppendOptions,
    StreamGroupJoinOptions,
    StreamGroupReadOptions,
    StreamReadOptions,
    StreamStartMode,
    StreamTrimOptions,
    WorkerAwaitOptions,
    WorkerTouchOptions,
    wire,
)

Call = Callable[[FloClient], Awaitable[Any]]
Check = Optional[Callable[[unittest.TestCase, Any], None]]


def _expect(value: Any) -> Callable[[unittest.TestCase, Any], None]:
    return lambda t, got: t.assertEqual(got, value)


def _status(t: unittest.TestCase, st: Any) -> None:
    t.assertEqual((st.run_id, st.status, st.created_at, st.started_at, st.completed_at, st.result, st.error, st.attempt),
                  ("run-1", "completed", 1700000000000, 1700000000100, 1700000000200, b"done", None, 1))


def _action_list(t: unittest.TestCase, page: Any) -> None:
    t.assertEqual(len(page), 1)
    a = page[0]
    t.assertEqual((a.name, a.action_type, a.version, a.enabled, a.timeout_ms, a.max_retries),
                  ("process-image", 0, 2, True, 60000, 3))
    t.assertIsNotNone(a.description)
    t.assertEqual((page.has_more, page.cursor), (False, None))


def _records(t: unittest.TestCase, res: Any) -> None:
    got = [(r.offset, r.timestamp, r.partition_key, r.payload, r.tier, r.partition) for r in res.records]
    t.assertEqual(got, [(1, 1700000000000, "user-1", b"hello", 0, 0), (2, 1700000000001, None, b"", 0, 0)])


def _task(t: unittest.TestCase, res: Any) -> None:
    task = res.task
    t.assertEqual((task.task_id, task.action_name, task.created_at, task.attempt, task.input),
                  ("run-1", "process-image", 1700000000000, 1, b'{"n":1}'))


def _workers(t: unittest.TestCase, page: Any) -> None:
    t.assertEqual(len(page), 1)
    w = page[0]
    t.assertEqual((w.worker_id, w.worker_type, w.status, w.tasks_completed, w.tasks_failed, w.current_load,
                   w.max_concurrency, w.registered_at, w.last_heartbeat),
                  ("worker-1", 0, "active", 5, 1, 1, 4, 1700000000000, 1700000000500))
    t.assertEqual([(p.name, p.run_count, p.fail_count, p.last_run_at) for p in w.processes],
                  [("process-image", 5, 1, 1700000000400)])
    t.assertEqual((w.metadata, w.machine_id, page.has_more), (None, None, False))


def _batch(t: unittest.TestCase, res: Any) -> None:
    t.assertEqual([(x.task_id, x.action_name, x.attempt, x.input) for x in res.tasks],
                  [("run-1", "process-image", 1, b'{"n":1}'), ("run-2", "process-image", 2, b"")])
    t.assertEqual(res.task, res.tasks[0])


def _detailed(t: unittest.TestCase, res: Any) -> None:
    (m,) = res.messages
    t.assertEqual((m.seq, m.payload, m.priority, m.delivery_count, m.enqueued_at, m.dlq_at, m.reason),
                  (7, b"hello", 5, 2, 1700000000000, None, "nacked"))


def _dlq(t: unittest.TestCase, res: Any) -> None:
    (m,) = res.messages
    t.assertEqual((m.seq, m.payload, m.priority, m.delivery_count, m.enqueued_at, m.dlq_at, m.reason),
                  (3, b"bad", 0, 5, 1700000000000, 1700000060000, "visibility timeout expired"))


# request file -> (response file or None for an empty OK, the API call, a check of its result)
REQUESTS: dict[str, tuple[Optional[str], Call, Check]] = {
    "kv_put_request.hex": ("ok_response_empty.hex", lambda c: c.kv.put("k", b"v"), _expect(None)),
    "kv_get_request.hex": ("kv_get_response.hex", lambda c: c.kv.get("k"), _expect(b"v")),
    "action_register_request.hex": (None, lambda c: c.action.register(
        "process-image", ActionType.USER,
        ActionRegisterOptions(timeout_ms=60000, max_retries=3, description="resize images")), None),
    "action_invoke_request.hex": ("action_invoke_response.hex", lambda c: c.action.invoke(
        "process-image", b'{"n":1}', ActionInvokeOptions(priority=10, idempotency_key="order-123")),
        lambda t, r: t.assertEqual(r.run_id, "run-1")),
    "action_status_request.hex": ("action_status_response.hex", lambda c: c.action.status("run-1"), _status),
    "action_list_request.hex": ("action_list_response.hex",
                                lambda c: c.action.list(ActionListOptions(prefix="process-")), _action_list),
    "action_delete_request.hex": (None, lambda c: c.action.delete("process-image"), None),
    "stream_append_request.hex": ("stream_append_response.hex", lambda c: c.stream.append(
        "events", b"hello", StreamAppendOptions(partition_key="user-1", timestamp=1700000000000)),
        lambda t, r: t.assertEqual((r.offset, r.timestamp), (1, 1700000000000))),
    "stream_read_offset_request.hex": ("stream_read_response.hex", lambda c: c.stream.read(
        "events", StreamReadOptions(start_mode=StreamStartMode.OFFSET, offset=5, count=10, block_ms=1000)), _records),
    "stream_read_timestamp_request.hex": (None, lambda c: c.stream.read(
        "events", StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=1700000000000, count=2)), None),
    "stream_read_tail_request.hex": (None, lambda c: c.stream.read(
        "events", StreamReadOptions(start_mode=StreamStartMode.TAIL, count=10)), None),
    "stream_trim_request.hex": ("stream_trim_response.hex", lambda c: c.stream.trim(
        "events", StreamTrimOptions(max_len=4, dry_run=True)),
        lambda t, r: t.assertEqual((r.deleted_count, r.first_offset), (6, 7))),
    "stream_group_join_request.hex": (None, lambda c: c.stream.group_join(
        "events", "g", "c1", StreamGroupJoinOptions(ack_timeout_ms=200, max_deliver=3)), None),
    "stream_group_read_request.hex": (None, lambda c: c.stream.group_read(
        "events", "g", "c1", StreamGroupReadOptions(count=10, block_ms=0)), None),
    "stream_group_ack_request.hex": (None, lambda c: c.stream.group_ack("events", "g", [1, 2]), None),
    "stream_group_dlq_requeue_request.hex": (None, lambda c: c.stream.group_dlq_requeue("events", "g", [3]), None),
    "worker_register_request.hex": (None, lambda c: c.worker.register(
        "worker-1", ["process-image", "resize-image"]), None),
    "worker_await_request.hex": ("worker_await_response.hex", lambda c: c.worker.await_task(
        "worker-1", ["process-image"], WorkerAwaitOptions(block_ms=30000, timeout_ms=60000)), _task),
    "worker_touch_request.hex": (None, lambda c: c.worker.touch(
        "worker-1", "run-1", WorkerTouchOptions(extend_ms=30000)), None),
    "worker_complete_request.hex": (None, lambda c: c.worker.complete("worker-1", "run-1", b"done"), None),
    "worker_fail_request.hex": (None, lambda c: c.worker.fail("worker-1", "run-1", "boom"), None),
    "worker_list_request.hex": ("worker_list_response.hex", lambda c: c.worker.list(), _workers),
    "worker_await_batch_request.hex": ("worker_await_batch_response.hex", lambda c: c.worker.await_task(
        "worker-1", ["process-image"], WorkerAwaitOptions(count=10, block_ms=30000)), _batch),
    "queue_enqueue_request.hex": ("queue_enqueue_response.hex", lambda c: c.queue.enqueue(
        "jobs", b"hello", EnqueueOptions(priority=10, delay_ms=60000, dedup_key="task-123")), _expect(1)),
    "queue_dequeue_request.hex": ("queue_dequeue_response.hex", lambda c: c.queue.dequeue(
        "jobs", 10, DequeueOptions(visibility_timeout_ms=30000, block_ms=5000)),
        lambda t, r: t.assertEqual([(m.seq, m.payload) for m in r.messages], [(1, b"hello"), (2, b"")])),
    "queue_dequeue_detail_request.hex": ("queue_dequeue_detail_response.hex", lambda c: c.queue.dequeue(
        "jobs", 1, DequeueOptions(detailed=True)), _detailed),
    "queue_ack_request.hex": (None, lambda c: c.queue.ack("jobs", [1, 2]), None),
    "queue_nack_dlq_request.hex": (None, lambda c: c.queue.nack("jobs", [3], NackOptions(to_dlq=True)), None),
    "queue_nack_retry_request.hex": (None, lambda c: c.queue.nack(
        "jobs", [3], NackOptions(delay_ms=2000, reason="db down")), None),
    "queue_touch_request.hex": (None, lambda c: c.queue.touch("jobs", [9]), None),
    "queue_peek_request.hex": (None, lambda c: c.queue.peek("jobs", 5), None),
    "queue_dlq_list_request.hex": ("queue_dlq_list_response.hex", lambda c: c.queue.dlq_list(
        "jobs", DlqListOptions(limit=100, detailed=True)), _dlq),
    "queue_dlq_requeue_request.hex": (None, lambda c: c.queue.dlq_requeue("jobs", [3]), None),
    "queue_dlq_purge_request.hex": ("queue_dlq_purge_response.hex", lambda c: c.queue.dlq_purge("jobs"), _expect(4)),
    "queue_stats_request.hex": ("queue_stats_response.hex", lambda c: c.queue.stats("jobs"),
                                lambda t, r: t.assertEqual((r.ready, r.delayed, r.in_flight, r.dlq), (3, 1, 2, 4))),
}


def _response_checks() -> dict[str, Callable[[unittest.TestCase, bytes], None]]:
    def info(t: unittest.TestCase, p: bytes) -> None:
        i = wire.decode_stream_info(p)
        t.assertEqual((i.first_offset, i.last_offset, i.count, i.bytes), (7, 10, 4, 123))
        t.assertEqual(wire.encode_stream_info(i), p)

    def dead(t: unittest.TestCase, p: bytes) -> None:
        (d,) = wire.decode_dead_records(p)
        t.assertEqual((d.offset, d.timestamp, d.deliveries, d.dead_at, d.consumer, d.partition_key, d.payload),
                      (3, 1700000000000, 3, 1700000005000, "c1", "k", b"bad"))
        t.assertEqual(wire.encode_dead_records([d]), p)

    def empty_await(t: unittest.TestCase, p: bytes) -> None:
        t.assertIsNone(wire.decode_task_assignment(p))

    def records(t: unittest.TestCase, p: bytes) -> None:
        t.assertEqual(wire.encode_record_list(wire.decode_record_list(p)), p)

    def status(t: unittest.TestCase, p: bytes) -> None:
        t.assertEqual(wire.encode_action_status(wire.decode_action_status(p)), p)

    def workers(t: unittest.TestCase, p: bytes) -> None:
        t.assertEqual(wire.encode_worker_list(wire.decode_worker_list(p)), p)

    def actions(t: unittest.TestCase, p: bytes) -> None:
        t.assertEqual(wire.encode_action_list(wire.decode_action_list(p)), p)

    def batch(t: unittest.TestCase, p: bytes) -> None:
        t.assertEqual(wire.encode_task_batch(wire.decode_task_batch(p)), p)

    def messages(detailed: bool) -> Callable[[unittest.TestCase, bytes], None]:
        def check(t: unittest.TestCase, p: bytes) -> None:
            t.assertEqual(wire.encode_message_list(wire.decode_message_list(p, detailed), detailed), p)
        return check

    def task(t: unittest.TestCase, p: bytes) -> None:
        task = wire.decode_task_assignment(p)
        assert task is not None
        t.assertEqual(wire.encode_task_assignment(task), p)

    return {
        "stream_info_response.hex": info,
        "stream_group_dlq_list_response.hex": dead,
        "worker_await_response_empty.hex": empty_await,
        "stream_read_response.hex": records,
        "action_status_response.hex": status,
        "worker_list_response.hex": workers,
        "action_list_response.hex": actions,
        "worker_await_response.hex": task,
        "worker_await_batch_response.hex": batch,
        "queue_dequeue_response.hex": messages(False),
        "queue_dequeue_empty_response.hex": messages(False),
        "queue_dequeue_detail_response.hex": messages(True),
        "queue_dlq_list_response.hex": messages(True),
        "queue_stats_response.hex": lambda t, p: t.assertEqual(wire.encode_queue_stats(wire.decode_queue_stats(p)), p),
        "queue_dlq_purge_response.hex": lambda t, p: t.assertEqual(wire.decode_u64(p), 4),
        "queue_enqueue_response.hex": lambda t, p: t.assertEqual(wire.decode_seq(p), 1),
    }


RESPONSES = _response_checks()


def golden_files() -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(TESTDATA, "*.hex")))


class GoldenRequestTest(AsyncTestCase):
    """Each request file is what the public API sends, byte for byte."""

    async def test_requests(self) -> None:
        replies: dict[int, bytes] = {}

        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            if h.request_id in replies:
                return replies.pop(h.request_id)
            return wire.encode_response(h.request_id, wire.Status.OK)

        fake = FakeServer(handler)
        await fake.start()
        try:
            for name, (resp_name, call, check) in REQUESTS.items():
                if not os.path.exists(os.path.join(TESTDATA, name)):
                    continue  # not (yet) in the shared set
                with self.subTest(file=name):
                    want = load_hex(name)
                    h, _ = wire.decode_frame(want)
                    if resp_name is not None:
                        replies[h.request_id] = load_hex(resp_name)
                    client = FloClient(fake.addr)
                    client._ids = itertools.count(h.request_id)  # match the file's request id
                    before = len(fake.raw)
                    result = await call(client)
                    await client.close()
                    self.assertEqual(fake.raw[before:], [want], f"{name}: bytes differ")
                    if check is not None:
                        check(self, result)
        finally:
            await fake.stop()


class GoldenFileTest(unittest.TestCase):
    def test_every_file_is_covered_or_round_trips(self) -> None:
        files = golden_files()
        self.assertTrue(files)
        for name in files:
            data = load_hex(name)
            if data[20] != wire.VERSION or data[22] != 0:
                continue  # a v2 frame (tested in test_wire)
            with self.subTest(file=name):
                h, payload = wire.decode_frame(data)
                self.assertEqual(wire.encode_frame(h.request_id, h.code, payload), data)
                if name.endswith("_request.hex"):
                    env = wire.decode_envelope(payload)
                    self.assertEqual(
                        wire.encode_request(h.request_id, h.code, env.namespace, env.key, env.value, env.options), data)
                if name in RESPONSES:
                    RESPONSES[name](self, payload)

    def test_known_files_exist(self) -> None:
        files = set(golden_files())
        for name in list(REQUESTS) + list(RESPONSES):
            if name.startswith(("kv_", "action_", "stream_", "worker_", "queue_")):
                self.assertIn(name, files)
