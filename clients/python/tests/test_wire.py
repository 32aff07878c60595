"""wire.py against the golden frames in wire/testdata and round trips of every body layout."""

from __future__ import annotations

import binascii
import glob
import os
import struct
import unittest

from .harness import REPO
from flo import wire
from flo.errors import IncompleteResponseError, InvalidChecksumError, InvalidMagicError, UnsupportedVersionError, ValidationError
from flo.options import StreamReadOptions, StreamStartMode
from flo.results import (
    ActionInfo,
    ActionRunStatus,
    KVEntry,
    Message,
    QueueStats,
    StreamDeadRecord,
    ScanResult,
    StreamAppendResult,
    StreamID,
    StreamInfo,
    StreamRecord,
    TaskAssignment,
    VersionEntry,
    WorkerInfo,
    WorkerProcess,
)
from flo.stream import read_position

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "wire", "testdata")


def load_hex(name: str) -> bytes:
    with open(os.path.join(TESTDATA, name)) as f:
        lines = [ln for ln in f.read().splitlines() if not ln.lstrip().startswith("#")]
    return bytes.fromhex(" ".join(lines))


class GoldenFrameTest(unittest.TestCase):
    def test_testdata_present(self) -> None:
        files = glob.glob(os.path.join(TESTDATA, "*.hex"))
        self.assertTrue(files, f"no golden files in {TESTDATA}")

    def test_kv_put_request(self) -> None:
        want = load_hex("kv_put_request.hex")
        self.assertEqual(wire.encode_request(1, wire.OpCode.KV_PUT, "default", b"k", b"v"), want)
        h, payload = wire.decode_frame(want)
        self.assertEqual((h.request_id, h.code, h.flags, h.reserved), (1, 0x30, 0, 0))
        env = wire.decode_envelope(payload)
        self.assertEqual((env.namespace, env.key, env.value, env.options), ("default", b"k", b"v", b""))
        self.assertEqual(h.crc32, 0x86CAF41B)

    def test_kv_get_request(self) -> None:
        want = load_hex("kv_get_request.hex")
        self.assertEqual(wire.encode_request(2, wire.OpCode.KV_GET, "default", b"k"), want)
        h, payload = wire.decode_frame(want)
        self.assertEqual(h.code, wire.OpCode.KV_GET)
        self.assertEqual(wire.decode_envelope(payload).key, b"k")

    def test_kv_get_response(self) -> None:
        want = load_hex("kv_get_response.hex")
        h, payload = wire.decode_frame(want)
        self.assertEqual((h.request_id, h.code, payload), (2, wire.Status.OK, b"v"))
        self.assertEqual(wire.encode_response(2, wire.Status.OK, b"v"), want)

    def test_ok_response_empty(self) -> None:
        want = load_hex("ok_response_empty.hex")
        h, payload = wire.decode_frame(want)
        self.assertEqual((h.request_id, h.code, payload), (1, 0, b""))
        self.assertEqual(wire.encode_response(1, wire.Status.OK), want)

    def test_not_found_response(self) -> None:
        want = load_hex("not_found_response.hex")
        h, payload = wire.decode_frame(want)
        self.assertEqual((h.request_id, h.code, payload), (1, wire.Status.NOT_FOUND, b""))
        self.assertEqual(wire.encode_response(1, wire.Status.NOT_FOUND), want)

    def test_v2_frame_is_not_v1(self) -> None:
        data = load_hex("kv_put_v2_request.hex")
        # Byte 22 (v1 flags) is 1 in v2; byte 20 (v1 version) is the opcode low byte 0.
        self.assertEqual(data[22], 1)
        with self.assertRaises(UnsupportedVersionError):
            wire.decode_header(data)

    def test_every_golden_file_round_trips(self) -> None:
        for path in sorted(glob.glob(os.path.join(TESTDATA, "*.hex"))):
            name = os.path.basename(path)
            data = load_hex(name)
            if data[20] != wire.VERSION or data[22] != 0:
                continue  # not a v1 frame
            with self.subTest(name=name):
                h, payload = wire.decode_frame(data)
                self.assertEqual(wire.encode_frame(h.request_id, h.code, payload, h.flags), data)
                if name.endswith("_request.hex"):
                    env = wire.decode_envelope(payload)
                    again = wire.encode_request(h.request_id, h.code, env.namespace, env.key, env.value, env.options)
                    self.assertEqual(again, data)


class FramingTest(unittest.TestCase):
    def test_crc_matches_spec_definition(self) -> None:
        frame = wire.encode_request(7, wire.OpCode.QUEUE_ENQUEUE, "ns", b"q", b"payload", b"\x10\x01\x05")
        crc = binascii.crc32(frame[:16] + frame[20:24] + frame[24:]) & 0xFFFFFFFF
        self.assertEqual(struct.unpack_from("<I", frame, 16)[0], crc)

    def test_fast_encode_request_matches_layers(self) -> None:
        import random

        rnd = random.Random(7)
        for _ in range(200):
            ns = "".join(rnd.choice("abcé") for _ in range(rnd.randrange(0, 20)))
            key = rnd.randbytes(rnd.randrange(0, 40))
            value = rnd.randbytes(rnd.randrange(0, 300))
            opts = rnd.randbytes(rnd.randrange(0, 30))
            rid, op = rnd.randrange(1 << 64), rnd.randrange(256)
            self.assertEqual(wire.encode_request(rid, op, ns, key, value, opts),
                             wire.encode_frame(rid, op, wire.encode_envelope(ns, key, value, opts)))
        with self.assertRaises(ValueError):
            wire.encode_request(1, 0x30, "x" * 300)

    def test_corrupted_crc_detected(self) -> None:
        frame = bytearray(wire.encode_response(3, 0, b"hello"))
        frame[-1] ^= 0xFF
        with self.assertRaises(InvalidChecksumError):
            wire.decode_frame(bytes(frame))
        self.assertFalse(wire.header_crc_ok(bytes(frame[:24]), bytes(frame[24:])))

    def test_bad_magic(self) -> None:
        frame = bytearray(wire.encode_response(3, 0))
        frame[0] = 0
        with self.assertRaises(InvalidMagicError):
            wire.decode_header(bytes(frame))

    def test_short_header(self) -> None:
        with self.assertRaises(IncompleteResponseError):
            wire.decode_header(b"FLO\x00")

    def test_envelope_leniency(self) -> None:
        self.assertEqual(wire.decode_envelope(b"").namespace, "")
        env = wire.encode_envelope("a", b"b", b"c", b"")[:-2]  # no opts_len
        self.assertEqual(wire.decode_envelope(env).options, b"")


class TLVTest(unittest.TestCase):
    def test_spec_examples(self) -> None:
        self.assertEqual(wire.Options().u64(wire.Tag.TTL_SECONDS, 3600).build(), bytes.fromhex("01 08 10 0E 00 00 00 00 00 00"))
        self.assertEqual(wire.Options().flag(wire.Tag.IF_NOT_EXISTS).build(), bytes.fromhex("03 00"))
        self.assertEqual(StreamID.from_sequence(100).to_bytes(), bytes(8) + bytes.fromhex("64 00 00 00 00 00 00 00"))

    def test_parse(self) -> None:
        blob = wire.Options().u8(0x10, 5).u32(0x15, 9).flag(0x23).raw(0x13, "dk").build()
        self.assertEqual(wire.option_uint(blob, 0x10), 5)
        self.assertEqual(wire.option_uint(blob, 0x15), 9)
        self.assertEqual(wire.lookup_option(blob, 0x23), b"")
        self.assertEqual(wire.lookup_option(blob, 0x13), b"dk")
        self.assertIsNone(wire.lookup_option(blob, 0x99))
        self.assertEqual(wire.parse_options(blob + b"\x01\x08\x00"), wire.parse_options(blob))  # truncated tail ignored

    def test_put_options_order(self) -> None:
        blob = wire.kv_put_options(ttl_seconds=1, cas_version=2, if_not_exists=True, if_exists=True)
        self.assertEqual([t for t, _ in wire.parse_options(blob)], [0x01, 0x02, 0x03, 0x04])

    def test_limits(self) -> None:
        with self.assertRaises(ValueError):
            wire.Options().raw(0x13, "x" * 256)
        with self.assertRaises(ValueError):
            wire.Options().u8(0x10, 256)
        with self.assertRaises(ValueError):
            wire.encode_envelope("n" * 256)


class BodyTest(unittest.TestCase):
    def test_scan(self) -> None:
        r = ScanResult([KVEntry(b"a", b"1"), KVEntry(b"b", None)], cursor=b"cur", has_more=True)
        self.assertEqual(wire.decode_scan_result(wire.encode_scan_result(r)), r)
        empty = wire.decode_scan_result(wire.encode_scan_result(ScanResult()))
        self.assertEqual((empty.entries, empty.cursor, empty.has_more), ([], None, False))
        with self.assertRaises(IncompleteResponseError):
            wire.decode_scan_result(b"\x00")

    def test_history(self) -> None:
        h = [VersionEntry(3, 1700, b"c"), VersionEntry(1, 1600, b"a")]
        self.assertEqual(wire.decode_history(wire.encode_history(h)), h)

    def test_message_list(self) -> None:
        msgs = [Message(1, b"x"), Message(2, b""), Message(9, b"zz")]
        raw = wire.encode_message_list(msgs)
        self.assertEqual(raw[:4], b"\x03\x00\x00\x00")
        self.assertEqual(wire.decode_message_list(raw), msgs)
        self.assertEqual(wire.decode_message_list(b""), [])

    def test_detailed_message_list(self) -> None:
        msgs = [Message(1, b"x", delivery_count=2, priority=5, enqueued_at=100, dlq_at=200, reason="boom"),
                Message(2, b"", delivery_count=0, priority=0, enqueued_at=300, dlq_at=None, reason=None)]
        raw = wire.encode_message_list(msgs, detailed=True)
        # Per record: seq, len, payload, then priority:u8 deliveries:u32 enqueued:i64 dlq_at:i64 reason:u16+bytes.
        self.assertEqual(raw[4:4 + 12 + 1 + 1 + 4 + 8 + 8 + 2 + 4],
                         struct.pack("<QI", 1, 1) + b"x" + struct.pack("<BIqqH", 5, 2, 100, 200, 4) + b"boom")
        self.assertEqual(wire.decode_message_list(raw, detailed=True), msgs)

    def test_queue_extensions(self) -> None:
        st = QueueStats(1, 2, 3, 4)
        self.assertEqual(wire.decode_queue_stats(wire.encode_queue_stats(st) + b"more"), st)
        with self.assertRaises(IncompleteResponseError):
            wire.decode_queue_stats(b"\x00" * 8)
        self.assertEqual(wire.decode_u64(struct.pack("<Q", 9)), 9)
        self.assertEqual(wire.Options().flag(wire.Tag.DLQ_ALL).build(), b"\x73\x00")
        self.assertEqual(wire.Options().raw(wire.Tag.NACK_REASON, "why").build(), b"\x71\x03why")

    def test_stream_extensions(self) -> None:
        dead = [StreamDeadRecord(4, 100, b"p", deliveries=10, dead_at=200, consumer="c1", partition_key="k", key=b"k"),
                StreamDeadRecord(5, 101, b"", deliveries=3, dead_at=201, consumer="")]
        self.assertEqual(wire.decode_dead_records(wire.encode_dead_records(dead)), dead)
        self.assertEqual(wire.group_join_options(5000, 3), b"\x30\x04" + struct.pack("<I", 5000) + b"\x31\x01\x03")
        self.assertEqual(wire.encode_group_name("g"), b"\x01\x00g")
        self.assertEqual(wire.group_read_options(10, 0, 200, 3),
                         b"\x15\x04" + struct.pack("<I", 10) + b"\x17\x04" + struct.pack("<I", 0)
                         + b"\x30\x04" + struct.pack("<I", 200) + b"\x31\x01\x03")

    def test_worker_register_capacity(self) -> None:
        self.assertEqual(wire.encode_worker_register(["a"], 8), struct.pack("<IH", 1, 1) + b"a\x01" + struct.pack("<I", 8))

    def test_seq_list(self) -> None:
        self.assertEqual(wire.encode_seq_list([1, 2]), bytes.fromhex("02000000 0100000000000000 0200000000000000"))
        self.assertEqual(wire.decode_seq_list(wire.encode_seq_list([5, 6, 7])), [5, 6, 7])

    def test_enqueue_options(self) -> None:
        self.assertEqual(wire.enqueue_options(), b"")
        blob = wire.enqueue_options(priority=10, delay_ms=60000, dedup_key="task-123")
        self.assertEqual(wire.parse_options(blob), [(0x10, b"\x0a"), (0x11, struct.pack("<Q", 60000)), (0x13, b"task-123")])

    def test_record_list(self) -> None:
        recs = [
            StreamRecord(1, 1000, b"a"),
            StreamRecord(2, 1001, b"b", partition_key="user-1", key=b"user-1"),
            StreamRecord(3, 1002, b"c", headers={"h": b"v"}),
        ]
        out = wire.decode_record_list(wire.encode_record_list(recs))
        self.assertEqual([(r.offset, r.timestamp, r.payload, r.partition_key) for r in out],
                         [(1, 1000, b"a", None), (2, 1001, b"b", "user-1"), (3, 1002, b"c", None)])
        self.assertEqual(out[2].headers, {"h": b"v"})
        self.assertEqual(out[1].sequence, 2)
        self.assertEqual(out[1].timestamp_ms, 1001)
        self.assertEqual(wire.decode_record_list(b""), [])

    def test_record_layout_bytes(self) -> None:
        # One record exactly as §6 draws it, key present.
        raw = (struct.pack("<I", 1) + struct.pack("<QqBI", 5, 77, 0, 0) + b"\x01" + struct.pack("<I", 2) + b"pk"
               + struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0))
        (rec,) = wire.decode_record_list(raw)
        self.assertEqual((rec.offset, rec.timestamp, rec.partition_key, rec.payload), (5, 77, "pk", b"abc"))

    def test_append_result_and_info(self) -> None:
        self.assertEqual(wire.decode_stream_append_result(wire.encode_stream_append_result(StreamAppendResult(4, 99))),
                         StreamAppendResult(4, 99))
        info = StreamInfo(1, 10, 10, 512)
        self.assertEqual(wire.decode_stream_info(wire.encode_stream_info(info) + b"extra"), info)
        with self.assertRaises(IncompleteResponseError):
            wire.decode_stream_info(b"\x00" * 31)

    def test_stream_options(self) -> None:
        self.assertEqual(wire.stream_append_options(partition_key="user-123", timestamp_ms=1699999999000),
                         b"\x25\x08user-123" + b"\x70\x08" + struct.pack("<Q", 1699999999000))
        cases = [
            (StreamReadOptions(), (False, None)),
            (StreamReadOptions(start_mode=StreamStartMode.OFFSET, offset=100), (False, StreamID(0, 100))),
            (StreamReadOptions(offset=100, block_ms=30000), (False, StreamID(0, 100))),
            (StreamReadOptions(start_mode=StreamStartMode.TAIL, count=10), (True, None)),
            (StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=1699999999000), (False, StreamID(1699999999000, 0))),
            (StreamReadOptions(start=StreamID.from_sequence(7)), (False, StreamID(0, 7))),
            (StreamReadOptions(tail=True), (True, None)),
            (StreamReadOptions(start_mode=StreamStartMode.TAIL, tail=True), (True, None)),
            (StreamReadOptions(start_mode=StreamStartMode.OFFSET), (False, StreamID(0, 0))),
            (StreamReadOptions(start_mode="timestamp", timestamp=5), (False, StreamID(5, 0))),
            (StreamReadOptions(start_mode=StreamStartMode.BEGINNING), (False, None)),
        ]
        for opts, want in cases:
            with self.subTest(opts=opts):
                self.assertEqual(read_position(opts), want)
        # Two positions at once are refused, as the Go SDK refuses them.
        conflicting = [
            StreamReadOptions(offset=5, timestamp=1699999999000),
            StreamReadOptions(offset=5, tail=True),
            StreamReadOptions(start=StreamID.from_sequence(7), offset=5),
            StreamReadOptions(start_mode=StreamStartMode.TAIL, offset=5),
            StreamReadOptions(start_mode=StreamStartMode.OFFSET, timestamp=5),
            StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, offset=5),
            StreamReadOptions(start_mode=StreamStartMode.BEGINNING, offset=5),
            StreamReadOptions(start_mode=StreamStartMode.OFFSET, tail=True),
            StreamReadOptions(start_mode=StreamStartMode.OFFSET, start=StreamID.from_sequence(7)),
        ]
        for opts in conflicting:
            with self.subTest(opts=opts), self.assertRaises(ValidationError):
                read_position(opts)
        blob = wire.stream_read_options(tail=True, start=StreamID(0, 1).to_bytes(), count=10, block_ms=0)
        self.assertEqual([t for t, _ in wire.parse_options(blob)], [0x23, 0x21, 0x15, 0x17])

    def test_group_bodies(self) -> None:
        self.assertEqual(wire.encode_group_consumer("g", "c1"), b"\x01\x00g\x02\x00c1")
        self.assertEqual(wire.encode_group_ack("g", [3]), b"\x01\x00g" + struct.pack("<IQ", 1, 3))

    def test_action_register_and_invoke(self) -> None:
        self.assertEqual(wire.encode_action_register(0), struct.pack("<BII", 0, 30000, 3) + b"\x00" * 6)
        self.assertEqual(wire.encode_action_register(0, 60000, 3, "d"),
                         struct.pack("<BII", 0, 60000, 3) + b"\x01\x01\x00d" + b"\x00" * 5)
        self.assertEqual(wire.encode_action_invoke(b"in"), struct.pack("<BqB", 10, 0, 0) + b"\x00in")
        self.assertEqual(wire.encode_action_invoke(b"in", 5, "k"), struct.pack("<BqB", 5, 0, 0) + b"\x01\x01\x00kin")
        self.assertEqual(wire.decode_action_invoke(b"run-1"), "run-1")
        self.assertEqual(wire.encode_action_invoke(b"", 10, None, 2500), struct.pack("<BqB", 10, 2500, 0) + b"\x00")
        with self.assertRaises(ValueError):
            wire.encode_action_invoke(b"", 10, None, -1)

    def test_action_status(self) -> None:
        for st in [
            ActionRunStatus("r1", "pending", created_at=5),
            ActionRunStatus("r2", "completed", 5, 6, 7, b"out", None, 1, 2),
            ActionRunStatus("r3", "failed", 5, 6, 7, None, "boom", 4, 3),
        ]:
            with self.subTest(st=st):
                got = wire.decode_action_status(wire.encode_action_status(st))
                self.assertEqual((got.run_id, got.status, got.created_at, got.started_at, got.completed_at,
                                  got.result, got.error, got.retry_count),
                                 (st.run_id, st.status, st.created_at, st.started_at, st.completed_at,
                                  st.result, st.error, st.retry_count))

    def test_action_list(self) -> None:
        acts = [ActionInfo("a", 0, 1, True), ActionInfo("b", 0, 3, False, 5000, 2, "desc"), ActionInfo("c", 0, 1, True, 1, 0)]
        page = wire.decode_action_list(wire.encode_action_list(acts, True, b"cur"))
        self.assertEqual(list(page), acts)
        self.assertEqual((page.has_more, page.cursor), (True, b"cur"))
        self.assertEqual(wire.encode_action_list_request(7, b"cur"), struct.pack("<I", 7) + b"cur")
        # The earliest upstream form: no trailer.
        legacy = wire.encode_action_list(acts[:1])[:-3]
        self.assertEqual(list(wire.decode_action_list(legacy)), acts[:1])
        # An entry longer than 6 bytes carries the extension fields.
        entry = struct.pack("<BIBII", 0, 2, 1, 60000, 5) + b"\x01" + struct.pack("<H", 4) + b"desc" + b"more"
        raw = struct.pack("<I", 1) + struct.pack("<H", 1) + b"x" + struct.pack("<I", len(entry)) + entry + b"\x00\x00\x00"
        (info,) = wire.decode_action_list(raw)
        self.assertEqual((info.name, info.version, info.timeout_ms, info.max_retries, info.description),
                         ("x", 2, 60000, 5, "desc"))

    def test_worker_bodies(self) -> None:
        self.assertEqual(wire.encode_worker_register(["a"]), struct.pack("<IH", 1, 1) + b"a\x00")
        self.assertEqual(wire.encode_task_types(["a", "bc"]), struct.pack("<IH", 2, 1) + b"a" + struct.pack("<H", 2) + b"bc")
        self.assertEqual(wire.worker_await_options(30000), b"\x17\x04" + struct.pack("<I", 30000))
        self.assertEqual(wire.worker_await_options(None), b"")
        self.assertEqual(wire.worker_await_options(1, 2), b"\x17\x04" + struct.pack("<I", 1) + b"\x50\x04" + struct.pack("<I", 2))
        self.assertEqual(wire.encode_worker_touch("t", 30000), b"\x01\x00t" + struct.pack("<I", 30000))
        self.assertEqual(wire.encode_worker_complete("t", b"res"), b"\x01\x00tres")
        self.assertEqual(wire.encode_worker_fail("t", "err"), b"\x01\x00terr")
        self.assertEqual(wire.worker_fail_options(True), b"\x43\x00")
        self.assertEqual(wire.worker_fail_options(False), b"")
        task = TaskAssignment("run-1", "act", b"input", 123, 2)
        self.assertEqual(wire.decode_task_assignment(wire.encode_task_assignment(task)), task)
        self.assertIsNone(wire.decode_task_assignment(b""))
        with self.assertRaises(IncompleteResponseError):
            wire.decode_task_assignment(b"\x01\x00")

    def test_task_batch(self) -> None:
        tasks = [TaskAssignment("run-1", "a", b"x", 1, 1), TaskAssignment("run-2", "a", b"", 2, 2)]
        raw = wire.encode_task_batch(tasks)
        self.assertEqual(raw[:8], struct.pack("<II", 2, len(wire.encode_task_assignment(tasks[0]))))
        self.assertEqual(wire.decode_task_batch(raw), tasks)
        self.assertEqual(wire.decode_task_batch(b""), [])
        self.assertEqual(wire.worker_await_options(30000, None, 10),
                         b"\x15\x04" + struct.pack("<I", 10) + b"\x17\x04" + struct.pack("<I", 30000))

    def test_worker_list(self) -> None:
        ws = [WorkerInfo("w1", 0, "active", 3, 1, 0, 4, 100, 200, [WorkerProcess("a", 0, 3, 1, 150)], '{"k":1}', "m1"),
              WorkerInfo("w2", status="unhealthy")]
        page = wire.decode_worker_list(wire.encode_worker_list(ws, True, b"c2"))
        self.assertEqual(list(page), ws)
        self.assertEqual((page.has_more, page.cursor), (True, b"c2"))
        self.assertEqual(page[0].task_types, ["a"])


if __name__ == "__main__":
    unittest.main()
