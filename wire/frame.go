package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// Magic is the first four bytes of every frame: "FLO\0" on the wire.
const Magic uint32 = 0x004F4C46

// HeaderSize is the size of a v1 frame header in bytes.
const HeaderSize = 24

// Version is the protocol version byte carried by every frame.
const Version byte = 0x01

// DefaultMaxPayloadBytes is the default limit on a frame's payload: a 16 MiB
// value plus the largest key, namespace and options blob the envelope can
// carry, rounded up. The server checks a declared length against its limit
// before allocating anything, and allocates only as the payload arrives.
const DefaultMaxPayloadBytes = 16<<20 + 192<<10

// Layout names a frame header layout. Only v1 exists today; v2 (32-byte
// header, u16 opcodes) will be added beside it.
type Layout uint8

// LayoutV1 is the 24-byte header spoken by the flo-python SDK.
const LayoutV1 Layout = 1

// Frame errors. A server answers each with BAD_REQUEST and request id 0, then
// closes the connection: after a bad header the stream cannot be resynchronised.
var (
	ErrBadMagic    = errors.New("wire: bad magic")
	ErrBadVersion  = errors.New("wire: unsupported version or header layout")
	ErrBadReserved = errors.New("wire: reserved header byte is not zero")
	ErrChecksum    = errors.New("wire: crc32 mismatch")
	ErrTooLarge    = errors.New("wire: declared payload length over the limit")
	// ErrBadFlags is for a request whose flags byte is set. Responses'
	// flags are ignored (PROTOCOL.md), so ParseHeader does not check it;
	// the server does.
	ErrBadFlags = errors.New("wire: flags byte of a v1 request is not zero")
)

// Header is a decoded frame header. Code is the opcode in a request and the
// status in a response.
type Header struct {
	Layout    Layout
	Length    uint32
	RequestID uint64
	CRC       uint32
	Code      byte
	Flags     byte
}

// Frame is one decoded frame. Payload aliases the buffer it was read into.
type Frame struct {
	Header
	Payload []byte
}

// checksum computes the frame CRC over header bytes 0..15, 20..23 and payload.
func checksum(hdr []byte, payload []byte) uint32 {
	c := crc32.Update(0, crc32.IEEETable, hdr[0:16])
	c = crc32.Update(c, crc32.IEEETable, hdr[20:24])
	return crc32.Update(c, crc32.IEEETable, payload)
}

// AppendFrame appends a complete v1 frame to dst. code is the opcode for a
// request and the status for a response.
func AppendFrame(dst []byte, requestID uint64, code byte, payload []byte) []byte {
	return append(AppendHeader(dst, requestID, code, payload), payload...)
}

// AppendHeader appends only the v1 header of the frame AppendFrame would
// build, for a writer that sends the payload from where it lies.
func AppendHeader(dst []byte, requestID uint64, code byte, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, Magic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, requestID)
	dst = append(dst, 0, 0, 0, 0, Version, code, 0, 0)
	hdr := dst[start : start+HeaderSize]
	binary.LittleEndian.PutUint32(hdr[16:20], checksum(hdr, payload))
	return dst
}

// ParseHeader validates a 24-byte header. It does not check the CRC, which
// needs the payload; see Frame.Verify.
func ParseHeader(b []byte, maxPayload uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, io.ErrUnexpectedEOF
	}
	if binary.LittleEndian.Uint32(b[0:4]) != Magic {
		return Header{}, ErrBadMagic
	}
	h := Header{
		Layout:    LayoutV1,
		Length:    binary.LittleEndian.Uint32(b[4:8]),
		RequestID: binary.LittleEndian.Uint64(b[8:16]),
		CRC:       binary.LittleEndian.Uint32(b[16:20]),
		Code:      b[21],
		Flags:     b[22],
	}
	// Byte 22 is the v1 flags byte and the v2 version byte; a v1 client
	// always sends 0, so a 1 there is a v2 frame, which we do not speak yet.
	if b[20] != Version || b[22] == Version {
		return Header{}, ErrBadVersion
	}
	if b[23] != 0 {
		return Header{}, ErrBadReserved
	}
	if h.Length > maxPayload {
		return Header{}, fmt.Errorf("%w: %d > %d", ErrTooLarge, h.Length, maxPayload)
	}
	return h, nil
}

// Verify checks the frame's CRC against its header and payload.
func (f *Frame) Verify(hdr []byte) error {
	if checksum(hdr, f.Payload) != f.CRC {
		return ErrChecksum
	}
	return nil
}

// DecodeFrame decodes one complete frame from the front of b and returns the
// number of bytes it used. It returns io.ErrUnexpectedEOF when b holds only
// part of a frame, and a frame error when the frame is malformed.
func DecodeFrame(b []byte, maxPayload uint32) (Frame, int, error) {
	h, err := ParseHeader(b, maxPayload)
	if err != nil {
		return Frame{}, 0, err
	}
	n := HeaderSize + int(h.Length)
	if len(b) < n {
		return Frame{}, 0, io.ErrUnexpectedEOF
	}
	f := Frame{Header: h, Payload: b[HeaderSize:n]}
	if err := f.Verify(b[:HeaderSize]); err != nil {
		return Frame{}, 0, err
	}
	return f, n, nil
}

// readChunk is the most ReadFrame allocates for a payload ahead of the bytes
// that fill it.
const readChunk = 64 << 10

// ReadFrame reads one frame from r. The header is validated, including the
// declared length against maxPayload, before the payload buffer is
// allocated. buf is reused when it is large enough; otherwise the buffer
// grows as the payload arrives (by doubling, from readChunk), so a header
// declaring a large payload costs little until the payload is sent.
func ReadFrame(r io.Reader, buf []byte, maxPayload uint32) (Frame, []byte, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	h, err := ParseHeader(hdr[:], maxPayload)
	if err != nil {
		return Frame{}, buf, err
	}
	payload, err := readPayload(r, buf, int(h.Length))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, payload, err
	}
	f := Frame{Header: h, Payload: payload}
	if err := f.Verify(hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	return f, buf, nil
}

// readPayload reads n bytes into buf, or into a buffer that grows with what
// has arrived when buf is too small.
func readPayload(r io.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) >= n {
		p := buf[:n]
		_, err := io.ReadFull(r, p)
		return p, err
	}
	p := buf[:0]
	for len(p) < n {
		step := min(n-len(p), max(len(p), readChunk))
		p = slices.Grow(p, step)
		m, err := io.ReadFull(r, p[len(p):len(p)+step])
		p = p[:len(p)+m]
		if err != nil {
			return p, err
		}
	}
	return p, nil
}
