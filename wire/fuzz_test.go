package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder, whole and split
// at a point (as a partial read would deliver them). Decoding must never
// panic, never accept a frame over the limit, and a decoded frame must
// re-encode to the same bytes. Seeds: the golden frames (f.Add below) and
// the committed corpus in testdata/fuzz/FuzzDecodeFrame, which runs as a
// normal test.
func FuzzDecodeFrame(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hex"))
	for _, name := range files {
		f.Add(readGolden(f, filepath.Base(name)), uint16(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		const limit = 1 << 16
		fr, n, err := DecodeFrame(data, limit)
		if err == nil {
			if fr.Length > limit || n != HeaderSize+int(fr.Length) {
				t.Fatalf("accepted frame of length %d (n=%d)", fr.Length, n)
			}
			again := AppendFrame(nil, fr.RequestID, fr.Code, fr.Payload)
			if fr.Flags == 0 && !bytes.Equal(again, data[:n]) {
				t.Fatalf("round trip:\n got %x\nwant %x", again, data[:n])
			}
			if r, err := DecodeRequest(fr.Payload); err == nil {
				_ = AppendRequest(nil, &r)
				r.Options.Has(TagBlockMs)
			}
		}
		// The streaming reader must agree with the buffer decoder however
		// the bytes arrive.
		cut := int(split) % (len(data) + 1)
		rd := &splitReader{parts: [][]byte{data[:cut], data[cut:]}}
		rf, _, rerr := ReadFrame(rd, nil, limit)
		if (rerr == nil) != (err == nil) {
			t.Fatalf("ReadFrame err=%v, DecodeFrame err=%v", rerr, err)
		}
		if err == nil && !bytes.Equal(rf.Payload, fr.Payload) {
			t.Fatal("ReadFrame and DecodeFrame disagree")
		}
	})
}

type splitReader struct{ parts [][]byte }

func (r *splitReader) Read(p []byte) (int, error) {
	for len(r.parts) > 0 && len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
	}
	if len(r.parts) == 0 {
		return 0, os.ErrClosed
	}
	n := copy(p, r.parts[0])
	r.parts[0] = r.parts[0][n:]
	return n, nil
}
