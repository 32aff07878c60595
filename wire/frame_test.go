package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// A header declaring a payload at the limit, with no payload behind it, must
// not make the reader allocate the whole declared length: a client could
// otherwise pin limit × connections of memory by sending headers alone.
func TestReadFrame_HeaderAloneDoesNotAllocateTheDeclaredLength(t *testing.T) {
	hdr := AppendFrame(nil, 1, byte(OpKVPut), nil)
	binary.LittleEndian.PutUint32(hdr[4:8], DefaultMaxPayloadBytes)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadFrame(bytes.NewReader(hdr), nil, DefaultMaxPayloadBytes)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("a bare header allocated %d bytes", grew)
	}
}

// Payloads arrive whole however the reader splits them, large or small, and
// a payload cut short is an unexpected EOF.
func TestReadFrame_PayloadSizes(t *testing.T) {
	for _, n := range []int{0, 1, readChunk - 1, readChunk, readChunk + 1, 5*readChunk + 7} {
		payload := bytes.Repeat([]byte{0xA5}, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		frame := AppendFrame(nil, 9, byte(OpKVPut), payload)
		r := &splitReader{parts: [][]byte{frame[:HeaderSize+n/3], frame[HeaderSize+n/3:]}}
		f, _, err := ReadFrame(r, nil, 1<<30)
		if err != nil || !bytes.Equal(f.Payload, payload) || f.RequestID != 9 {
			t.Fatalf("n=%d: err %v, payload equal %v", n, err, bytes.Equal(f.Payload, payload))
		}
		if n > 0 {
			_, _, err = ReadFrame(bytes.NewReader(frame[:len(frame)-1]), nil, 1<<30)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("n=%d cut short: err = %v", n, err)
			}
		}
	}
}

func TestAppendHeader_IsTheFrameWithoutItsPayload(t *testing.T) {
	payload := []byte("some payload")
	frame := AppendFrame(nil, 77, byte(StatusNotFound), payload)
	hdr := AppendHeader(nil, 77, byte(StatusNotFound), payload)
	if !bytes.Equal(append(hdr, payload...), frame) {
		t.Fatalf("header %x + payload != frame %x", hdr, frame)
	}
}
