package stream

import (
	"encoding/binary"
	"errors"
)

// Subkey bytes below a stream prefix (see the package doc).
const (
	subDead   = 'd'
	subGroup  = 'g'
	subMeta   = 'm'
	subRecord = 'r'

	groupMeta    = 'm'
	groupPending = 'p'
)

// prefixByte is the first byte of every stream key.
const prefixByte = 's'

var errCorrupt = errors.New("stream: corrupt state")

// streamPrefix returns 's' ns 0x00 [len:u16 BE] name.
func streamPrefix(ns string, name []byte) []byte {
	p := make([]byte, 0, 4+len(ns)+len(name))
	p = append(p, prefixByte)
	p = append(p, ns...)
	p = append(p, 0)
	p = binary.BigEndian.AppendUint16(p, uint16(len(name)))
	return append(p, name...)
}

// parseStreamKey splits any stream key into its namespace, name and prefix.
func parseStreamKey(k []byte) (ns string, name string, prefix []byte, ok bool) {
	if len(k) < 4 || k[0] != prefixByte {
		return "", "", nil, false
	}
	i := 1
	for i < len(k) && k[i] != 0 {
		i++
	}
	if i+3 > len(k) {
		return "", "", nil, false
	}
	n := int(binary.BigEndian.Uint16(k[i+1:]))
	end := i + 3 + n
	if end > len(k) {
		return "", "", nil, false
	}
	return string(k[1:i]), string(k[i+3 : end]), k[:end:end], true
}

// appendRecordKey appends prefix 'r' [off:u64 BE] to dst.
func appendRecordKey(dst, prefix []byte, off uint64) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, subRecord)
	return binary.BigEndian.AppendUint64(dst, off)
}

// recordKey returns a fresh record key.
func recordKey(prefix []byte, off uint64) []byte {
	return appendRecordKey(make([]byte, 0, len(prefix)+9), prefix, off)
}

// recordsEnd is the exclusive upper bound of every record key of a stream.
func recordsEnd(prefix []byte) []byte {
	return append(append(make([]byte, 0, len(prefix)+1), prefix...), subRecord+1)
}

// recordOffset extracts the offset from a record key.
func recordOffset(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

func metaKey(prefix []byte) []byte {
	return append(append(make([]byte, 0, len(prefix)+1), prefix...), subMeta)
}

// groupPrefix returns prefix 'g' [len:u16 BE] group.
func groupPrefix(prefix []byte, group string) []byte {
	p := make([]byte, 0, len(prefix)+3+len(group))
	p = append(p, prefix...)
	p = append(p, subGroup)
	p = binary.BigEndian.AppendUint16(p, uint16(len(group)))
	return append(p, group...)
}

// deadPrefix returns prefix 'd' [len:u16 BE] group.
func deadPrefix(prefix []byte, group string) []byte {
	p := make([]byte, 0, len(prefix)+3+len(group))
	p = append(p, prefix...)
	p = append(p, subDead)
	p = binary.BigEndian.AppendUint16(p, uint16(len(group)))
	return append(p, group...)
}

// appendOffsetKey appends base [off:u64 BE] to dst.
func appendOffsetKey(dst, base []byte, off uint64) []byte {
	dst = append(dst, base...)
	return binary.BigEndian.AppendUint64(dst, off)
}

// parseGroupKey splits the part of a key after prefix+'g' (or 'd') into the
// group name and what follows it.
func parseGroupKey(rest []byte) (group string, tail []byte, ok bool) {
	if len(rest) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(rest))
	if 2+n > len(rest) {
		return "", nil, false
	}
	return string(rest[2 : 2+n]), rest[2+n:], true
}

// recordHeaderSize is the fixed part of a stored record.
const recordHeaderSize = 8 + 8 + 8 + 8 + 1 + 1

// Record flags.
const (
	flagKey      = 1 << 0 // a partition key is present (it may be empty)
	flagClientTs = 1 << 1 // the timestamp was supplied by the client
)

// recordHeader is the decoded fixed part of a stored record.
type recordHeader struct {
	tsMs       int64
	maxTsMs    int64
	serverTsMs int64
	cumBytes   uint64
	flags      uint8
	keyLen     int
}

// size is the record's key+payload byte count given its whole stored value.
func (h *recordHeader) size(v []byte) uint64 { return uint64(len(v) - recordHeaderSize) }

func decodeRecordHeader(v []byte) (recordHeader, bool) {
	if len(v) < recordHeaderSize {
		return recordHeader{}, false
	}
	h := recordHeader{
		tsMs:       int64(binary.LittleEndian.Uint64(v[0:])),
		maxTsMs:    int64(binary.LittleEndian.Uint64(v[8:])),
		serverTsMs: int64(binary.LittleEndian.Uint64(v[16:])),
		cumBytes:   binary.LittleEndian.Uint64(v[24:]),
		flags:      v[32],
		keyLen:     int(v[33]),
	}
	if recordHeaderSize+h.keyLen > len(v) {
		return recordHeader{}, false
	}
	return h, true
}

// appendRecordValue appends a stored record.
func appendRecordValue(dst []byte, h *recordHeader, key, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.tsMs))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.maxTsMs))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.serverTsMs))
	dst = binary.LittleEndian.AppendUint64(dst, h.cumBytes)
	dst = append(dst, h.flags, byte(len(key)))
	dst = append(dst, key...)
	return append(dst, payload...)
}

// meta is the stream meta value written by trim.
type meta struct {
	first, last     uint64
	maxTs, serverTs int64
	cum             uint64
}

func (mt *meta) encode() []byte {
	b := make([]byte, 0, 40)
	b = binary.LittleEndian.AppendUint64(b, mt.first)
	b = binary.LittleEndian.AppendUint64(b, mt.last)
	b = binary.LittleEndian.AppendUint64(b, uint64(mt.maxTs))
	b = binary.LittleEndian.AppendUint64(b, uint64(mt.serverTs))
	return binary.LittleEndian.AppendUint64(b, mt.cum)
}

func decodeMeta(b []byte) (meta, bool) {
	if len(b) < 40 {
		return meta{}, false
	}
	return meta{
		first:    binary.LittleEndian.Uint64(b[0:]),
		last:     binary.LittleEndian.Uint64(b[8:]),
		maxTs:    int64(binary.LittleEndian.Uint64(b[16:])),
		serverTs: int64(binary.LittleEndian.Uint64(b[24:])),
		cum:      binary.LittleEndian.Uint64(b[32:]),
	}, true
}

// groupState is the persisted group value.
func encodeGroup(cursor uint64, ackTimeoutMs, maxDeliver uint32) []byte {
	b := make([]byte, 0, 16)
	b = binary.LittleEndian.AppendUint64(b, cursor)
	b = binary.LittleEndian.AppendUint32(b, ackTimeoutMs)
	return binary.LittleEndian.AppendUint32(b, maxDeliver)
}

func decodeGroup(b []byte) (cursor uint64, ackTimeoutMs, maxDeliver uint32, ok bool) {
	if len(b) < 16 {
		return 0, 0, 0, false
	}
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:]), true
}

// encodeEntry encodes a PEL entry (deadline in ns) or a dead letter
// (dead-at time in ms): [count:u32][time:i64][consumer_len:u16][consumer].
func encodeEntry(dst []byte, deliveries uint32, t int64, consumer string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, deliveries)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(consumer)))
	return append(dst, consumer...)
}

func decodeEntry(b []byte) (deliveries uint32, t int64, consumer string, ok bool) {
	if len(b) < 14 {
		return 0, 0, "", false
	}
	n := int(binary.LittleEndian.Uint16(b[12:]))
	if 14+n > len(b) {
		return 0, 0, "", false
	}
	return binary.LittleEndian.Uint32(b), int64(binary.LittleEndian.Uint64(b[4:])), string(b[14 : 14+n]), true
}
