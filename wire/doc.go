// Package wire is the Flo binary protocol, version 1, and nothing else: the
// frame header, opcodes, statuses, TLV options, the request envelope and the
// body layout of every operation, as Append* and Decode* functions over
// []byte. The server, the Go SDK and the tests all use it, so the bytes are
// defined once. docs/protocol.md is the normative description; the golden
// frames in testdata/ pin it down byte for byte and are shared with the
// Python SDK's tests.
//
// Frame header (v1, 24 bytes, little-endian):
//
//	+-------+--------+------------+-------+---------+-------------+-------+----------+
//	| 0..3  | 4..7   | 8..15      | 16..19| 20      | 21          | 22    | 23       |
//	| magic | length | request_id | crc32 | version | op | status | flags | reserved |
//	+-------+--------+------------+-------+---------+-------------+-------+----------+
//
// The CRC-32 (IEEE) covers bytes 0..15, bytes 20..23 and the payload.
//
// Request payload envelope:
//
//	[ns_len:u16][namespace][key_len:u16][key][value_len:u32][value][opts_len:u16][options]
//
// Options are TLV entries [tag:u8][len:u8][data].
//
// The v2 header (32 bytes, u16 opcodes) can be added beside v1: ReadFrame
// already reports which Layout a frame used and responses are written in the
// layout of their request, so handlers never see the difference.
package wire
