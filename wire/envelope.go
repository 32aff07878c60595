package wire

import (
	"encoding/binary"
	"errors"
)

// Request is the decoded payload envelope shared by every request. Its slices
// alias the frame payload.
type Request struct {
	Namespace string
	Key       []byte
	Value     []byte
	Options   Options
}

// ErrTruncated reports a body shorter than its layout requires.
var ErrTruncated = errors.New("wire: truncated body")

// AppendRequest appends the envelope for r to dst.
func AppendRequest(dst []byte, r *Request) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Namespace)))
	dst = append(dst, r.Namespace...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Key)))
	dst = append(dst, r.Key...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Value)))
	dst = append(dst, r.Value...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Options)))
	return append(dst, r.Options...)
}

// DecodeRequest decodes an envelope with the upstream server's leniency: an
// empty payload has all fields empty, a missing opts_len means no options,
// and an opts_len longer than what remains means the options are ignored.
// A namespace, key or value that runs past the payload is an error.
func DecodeRequest(p []byte) (Request, error) {
	var r Request
	if len(p) == 0 {
		return r, nil
	}
	d := Decoder{b: p}
	r.Namespace = string(d.Bytes16())
	r.Key = d.Bytes16()
	r.Value = d.Bytes32()
	if d.Err() != nil {
		return Request{}, ErrTruncated
	}
	if d.Len() >= 2 {
		n := int(d.U16())
		if n <= d.Len() {
			r.Options = Options(d.Take(n))
		}
	}
	return r, nil
}
