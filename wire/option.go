package wire

import "encoding/binary"

// Tag identifies a TLV option.
type Tag uint8

// Option tags of PROTOCOL.md §4 that the server reads, plus our extensions
// (documented in docs/protocol.md). Tags are only ever appended.
const (
	TagTTLSeconds          Tag = 0x01
	TagCASVersion          Tag = 0x02
	TagIfNotExists         Tag = 0x03
	TagIfExists            Tag = 0x04
	TagLimit               Tag = 0x05
	TagKeysOnly            Tag = 0x06
	TagCursor              Tag = 0x07
	TagPriority            Tag = 0x10
	TagDelayMs             Tag = 0x11
	TagVisibilityTimeoutMs Tag = 0x12
	TagDedupKey            Tag = 0x13
	TagMaxRetries          Tag = 0x14
	TagCount               Tag = 0x15
	TagSendToDLQ           Tag = 0x16
	TagBlockMs             Tag = 0x17
	TagWaitMs              Tag = 0x18
	TagStreamStart         Tag = 0x21
	TagStreamEnd           Tag = 0x22
	TagStreamTail          Tag = 0x23
	TagPartition           Tag = 0x24
	TagPartitionKey        Tag = 0x25
	TagMaxAgeSeconds       Tag = 0x26
	TagMaxBytes            Tag = 0x27
	TagDryRun              Tag = 0x28
	TagRetentionCount      Tag = 0x29
	TagRetentionAge        Tag = 0x2A
	TagRetentionBytes      Tag = 0x2B
	TagAckTimeoutMs        Tag = 0x30
	TagMaxDeliver          Tag = 0x31
	TagWorkerID            Tag = 0x40
	TagExtendMs            Tag = 0x41
	TagMaxTasks            Tag = 0x42
	TagRetry               Tag = 0x43
	TagTimeoutMs           Tag = 0x50
)

// Options is a TLV blob: repeated [tag:u8][len:u8][data]. Lookups take the
// first occurrence of a tag, skip unknown tags and stop silently at a
// truncated trailing entry, as upstream parsers do.
type Options []byte

// Lookup returns the data of the first entry with tag t.
func (o Options) Lookup(t Tag) ([]byte, bool) {
	for i := 0; i+2 <= len(o); {
		tag, n := Tag(o[i]), int(o[i+1])
		if i+2+n > len(o) {
			return nil, false
		}
		if tag == t {
			return o[i+2 : i+2+n], true
		}
		i += 2 + n
	}
	return nil, false
}

// Has reports whether tag t is present, whatever its length.
func (o Options) Has(t Tag) bool {
	_, ok := o.Lookup(t)
	return ok
}

// Flag reports a flag option: present with length 0, or with a non-zero first
// byte (the declared-u8 form, e.g. KEYS_ONLY=1, SEND_TO_DLQ=1).
func (o Options) Flag(t Tag) bool {
	v, ok := o.Lookup(t)
	return ok && (len(v) == 0 || v[0] != 0)
}

// Uint returns an unsigned scalar of width 1, 2, 4 or 8 bytes. A value of any
// other width counts as absent, like upstream helpers; this also accepts the
// SDK's 4-byte TIMEOUT_MS where a u64 is declared.
func (o Options) Uint(t Tag) (uint64, bool) {
	v, ok := o.Lookup(t)
	if !ok {
		return 0, false
	}
	switch len(v) {
	case 1:
		return uint64(v[0]), true
	case 2:
		return uint64(binary.LittleEndian.Uint16(v)), true
	case 4:
		return uint64(binary.LittleEndian.Uint32(v)), true
	case 8:
		return binary.LittleEndian.Uint64(v), true
	}
	return 0, false
}

// AppendFlag appends a zero-length flag option.
func AppendFlag(dst []byte, t Tag) []byte { return append(dst, byte(t), 0) }

// AppendU8 appends a 1-byte option.
func AppendU8(dst []byte, t Tag, v uint8) []byte { return append(dst, byte(t), 1, v) }

// AppendU32 appends a 4-byte option.
func AppendU32(dst []byte, t Tag, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(append(dst, byte(t), 4), v)
}

// AppendU64 appends an 8-byte option.
func AppendU64(dst []byte, t Tag, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(append(dst, byte(t), 8), v)
}

// MaxOptionBytes is the most data one option carries (its length is a u8):
// the limit of a dedup key, a partition key and a nack reason.
const MaxOptionBytes = 255

// AppendOption appends an option with arbitrary data of at most
// MaxOptionBytes; longer data is truncated by the caller's validation,
// never here.
func AppendOption(dst []byte, t Tag, data []byte) []byte {
	dst = append(dst, byte(t), byte(len(data)))
	return append(dst, data...)
}
