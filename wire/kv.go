package wire

import "encoding/binary"

// ScanEntry is one key of a KV scan reply. Value is nil for keys-only scans.
type ScanEntry struct {
	Key   []byte
	Value []byte
}

// ScanPage is a KV scan reply:
//
//	[has_more:u8][cursor_len:u32][cursor][count:u32] count × ([key_len:u16][key][value_len:u32][value])
type ScanPage struct {
	Entries []ScanEntry
	Cursor  []byte
	HasMore bool
}

// AppendScanPage appends the scan reply layout.
func AppendScanPage(dst []byte, p *ScanPage) []byte {
	more := byte(0)
	if p.HasMore {
		more = 1
	}
	dst = append(dst, more)
	dst = AppendBytes32(dst, p.Cursor)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p.Entries)))
	for _, e := range p.Entries {
		dst = AppendBytes16(dst, e.Key)
		dst = AppendBytes32(dst, e.Value)
	}
	return dst
}

// DecodeScanPage decodes a scan reply. Values of length zero decode as nil.
func DecodeScanPage(b []byte) (ScanPage, error) {
	d := NewDecoder(b)
	var p ScanPage
	p.HasMore = d.U8() != 0
	if c := d.Bytes32(); len(c) > 0 {
		p.Cursor = c
	}
	n := d.U32()
	if uint64(n) > uint64(d.Len())/6 {
		return ScanPage{}, ErrTruncated
	}
	p.Entries = make([]ScanEntry, 0, n)
	for i := uint32(0); i < n; i++ {
		e := ScanEntry{Key: d.Bytes16()}
		if v := d.Bytes32(); len(v) > 0 {
			e.Value = v
		}
		p.Entries = append(p.Entries, e)
	}
	return p, d.Err()
}

// HistoryEntry is one version of a key: [version:u64][timestamp:i64][value_len:u32][value].
// Timestamp is in Unix milliseconds.
type HistoryEntry struct {
	Version     uint64
	TimestampMs int64
	Value       []byte
}

// AppendHistory appends [count:u32] followed by the entries.
func AppendHistory(dst []byte, es []HistoryEntry) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(es)))
	for _, e := range es {
		dst = binary.LittleEndian.AppendUint64(dst, e.Version)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.TimestampMs))
		dst = AppendBytes32(dst, e.Value)
	}
	return dst
}

// DecodeHistory decodes a history reply.
func DecodeHistory(b []byte) ([]HistoryEntry, error) {
	d := NewDecoder(b)
	n := d.U32()
	if uint64(n) > uint64(d.Len())/20 {
		return nil, ErrTruncated
	}
	es := make([]HistoryEntry, 0, n)
	for i := uint32(0); i < n; i++ {
		es = append(es, HistoryEntry{Version: d.U64(), TimestampMs: d.I64(), Value: d.Bytes32()})
	}
	return es, d.Err()
}
