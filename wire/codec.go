package wire

import "encoding/binary"

// Decoder reads little-endian fields from a body. After the first short read
// every method returns zero values and Err reports ErrTruncated, so a layout
// can be decoded straight through and checked once at the end.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err returns ErrTruncated if any read ran past the end.
func (d *Decoder) Err() error { return d.err }

// Len returns the number of unread bytes.
func (d *Decoder) Len() int { return len(d.b) }

// Take returns the next n bytes.
func (d *Decoder) Take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = ErrTruncated
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// Rest returns every unread byte.
func (d *Decoder) Rest() []byte { return d.Take(len(d.b)) }

// U8 reads one byte.
func (d *Decoder) U8() uint8 {
	if b := d.Take(1); b != nil {
		return b[0]
	}
	return 0
}

// U16 reads a little-endian uint16.
func (d *Decoder) U16() uint16 {
	if b := d.Take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

// U32 reads a little-endian uint32.
func (d *Decoder) U32() uint32 {
	if b := d.Take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

// U64 reads a little-endian uint64.
func (d *Decoder) U64() uint64 {
	if b := d.Take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// I64 reads a little-endian two's-complement int64.
func (d *Decoder) I64() int64 { return int64(d.U64()) }

// Bytes16 reads a u16 length prefix and that many bytes.
func (d *Decoder) Bytes16() []byte { return d.Take(int(d.U16())) }

// Bytes32 reads a u32 length prefix and that many bytes.
func (d *Decoder) Bytes32() []byte {
	n := d.U32()
	if uint64(n) > uint64(len(d.b)) {
		d.err = ErrTruncated
		return nil
	}
	return d.Take(int(n))
}

// AppendBytes16 appends a u16 length prefix and b.
func AppendBytes16(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// AppendBytes32 appends a u32 length prefix and b.
func AppendBytes32(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
