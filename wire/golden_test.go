package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readGolden reads a testdata/*.hex file: whitespace-separated hex bytes,
// lines starting with '#' are comments. The Python SDK reads the same files.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func TestGolden_RequestsEncodeByteExact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file string
		id   uint64
		op   Op
		req  Request
	}{
		{"kv_put_request.hex", 1, OpKVPut, Request{Namespace: "default", Key: []byte("k"), Value: []byte("v")}},
		{"kv_get_request.hex", 2, OpKVGet, Request{Namespace: "default", Key: []byte("k")}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			want := readGolden(t, c.file)
			got := AppendFrame(nil, c.id, byte(c.op), AppendRequest(nil, &c.req))
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			f, n, err := DecodeFrame(want, DefaultMaxPayloadBytes)
			if err != nil || n != len(want) {
				t.Fatalf("decode: n=%d err=%v", n, err)
			}
			if f.RequestID != c.id || Op(f.Code) != c.op {
				t.Fatalf("decode header: %+v", f.Header)
			}
			r, err := DecodeRequest(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if r.Namespace != c.req.Namespace || !bytes.Equal(r.Key, c.req.Key) || !bytes.Equal(r.Value, c.req.Value) || len(r.Options) != 0 {
				t.Fatalf("decode envelope: %+v", r)
			}
		})
	}
}

func TestGolden_ResponsesEncodeByteExact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file    string
		id      uint64
		status  Status
		payload []byte
	}{
		{"ok_response_empty.hex", 1, StatusOK, nil},
		{"not_found_response.hex", 1, StatusNotFound, nil},
		{"kv_get_response.hex", 2, StatusOK, []byte("v")},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			want := readGolden(t, c.file)
			if got := AppendFrame(nil, c.id, byte(c.status), c.payload); !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			f, _, err := DecodeFrame(want, DefaultMaxPayloadBytes)
			if err != nil || Status(f.Code) != c.status || !bytes.Equal(f.Payload, c.payload) {
				t.Fatalf("decode: %+v %v", f, err)
			}
		})
	}
}

func TestGolden_V2FrameIsRejected(t *testing.T) {
	t.Parallel()
	_, _, err := DecodeFrame(readGolden(t, "kv_put_v2_request.hex"), DefaultMaxPayloadBytes)
	if !errors.Is(err, ErrBadVersion) {
		t.Fatalf("v2 frame: err = %v, want ErrBadVersion", err)
	}
}

func TestOptions_TLVExamples(t *testing.T) {
	t.Parallel()
	// PROTOCOL.md §9(c): TTL 3600 s, IF_NOT_EXISTS, StreamID(0, 100) little-endian.
	ttl := AppendU64(nil, TagTTLSeconds, 3600)
	if want, _ := hex.DecodeString("0108100e000000000000"); !bytes.Equal(ttl, want) {
		t.Fatalf("ttl = %x", ttl)
	}
	if nx := AppendFlag(nil, TagIfNotExists); !bytes.Equal(nx, []byte{0x03, 0x00}) {
		t.Fatalf("nx = %x", nx)
	}
	o := Options(append(append(ttl, 0x99, 0x01, 0xAA), AppendFlag(nil, TagIfNotExists)...))
	if v, ok := o.Uint(TagTTLSeconds); !ok || v != 3600 {
		t.Fatalf("ttl lookup = %d %v", v, ok)
	}
	if !o.Flag(TagIfNotExists) || o.Has(TagIfExists) {
		t.Fatal("flag lookup")
	}
	// First occurrence wins; a truncated trailing entry is ignored.
	dup := Options{byte(TagLimit), 1, 5, byte(TagLimit), 1, 9, byte(TagCount), 4, 1}
	if v, _ := dup.Uint(TagLimit); v != 5 {
		t.Fatalf("first occurrence: %d", v)
	}
	if dup.Has(TagCount) {
		t.Fatal("truncated entry must read as absent")
	}
	// A scalar of unexpected width is absent; 4-byte TIMEOUT_MS is accepted.
	if _, ok := (Options{byte(TagTimeoutMs), 3, 1, 2, 3}).Uint(TagTimeoutMs); ok {
		t.Fatal("3-byte scalar must be absent")
	}
	if v, ok := Options(AppendU32(nil, TagTimeoutMs, 7)).Uint(TagTimeoutMs); !ok || v != 7 {
		t.Fatal("4-byte TIMEOUT_MS")
	}
	// RETRY as a zero-length flag, or u8 1; u8 0 is false.
	if !(Options{byte(TagRetry), 0}).Flag(TagRetry) || !(Options{byte(TagRetry), 1, 1}).Flag(TagRetry) || (Options{byte(TagRetry), 1, 0}).Flag(TagRetry) {
		t.Fatal("retry flag forms")
	}
}

func TestDecodeRequest_Leniency(t *testing.T) {
	t.Parallel()
	if r, err := DecodeRequest(nil); err != nil || r.Namespace != "" || r.Key != nil {
		t.Fatalf("empty payload: %+v %v", r, err)
	}
	full := AppendRequest(nil, &Request{Namespace: "ns", Key: []byte("k"), Value: []byte("v"), Options: Options{3, 0}})
	// Missing opts_len: no options.
	if r, err := DecodeRequest(full[:len(full)-4]); err != nil || r.Options != nil || string(r.Value) != "v" {
		t.Fatalf("missing opts_len: %+v %v", r, err)
	}
	// opts_len longer than what remains: options ignored.
	if r, err := DecodeRequest(full[:len(full)-1]); err != nil || r.Options != nil {
		t.Fatalf("short options: %+v %v", r, err)
	}
	// A value running past the payload is an error.
	if _, err := DecodeRequest(full[:8]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated value: %v", err)
	}
}

func TestParseHeader_Rejects(t *testing.T) {
	t.Parallel()
	good := AppendFrame(nil, 7, byte(OpPing), nil)
	mut := func(i int, b byte) []byte { c := bytes.Clone(good); c[i] = b; return c }
	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"magic", mut(0, 'X'), ErrBadMagic},
		{"version", mut(20, 2), ErrBadVersion},
		{"v2 byte 22", mut(22, 1), ErrBadVersion},
		{"reserved", mut(23, 1), ErrBadReserved},
		{"crc", mut(16, good[16]^0xFF), ErrChecksum},
		{"length over limit", mut(7, 0x7F), ErrTooLarge},
	}
	for _, c := range cases {
		if _, _, err := DecodeFrame(c.frame, DefaultMaxPayloadBytes); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := DecodeFrame(good[:10], DefaultMaxPayloadBytes); err == nil {
		t.Error("partial header must not decode")
	}
}

func TestTruncateMessage_KeepsUTF8(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 400) // 800 bytes
	got := TruncateMessage(long)
	if len(got) > MaxErrorMessageBytes || !strings.HasPrefix(long, got) || len(got)%2 != 0 {
		t.Fatalf("len %d", len(got))
	}
}

func TestScanAndHistory_RoundTrip(t *testing.T) {
	t.Parallel()
	p := ScanPage{HasMore: true, Cursor: []byte{1, 'a'}, Entries: []ScanEntry{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b")}}}
	got, err := DecodeScanPage(AppendScanPage(nil, &p))
	if err != nil || !got.HasMore || string(got.Cursor) != "\x01a" || len(got.Entries) != 2 || string(got.Entries[0].Value) != "1" || got.Entries[1].Value != nil {
		t.Fatalf("scan: %+v %v", got, err)
	}
	hs := []HistoryEntry{{Version: 3, TimestampMs: 99, Value: []byte("x")}}
	gh, err := DecodeHistory(AppendHistory(nil, hs))
	if err != nil || len(gh) != 1 || gh[0].Version != 3 || gh[0].TimestampMs != 99 || string(gh[0].Value) != "x" {
		t.Fatalf("history: %+v %v", gh, err)
	}
	if _, err := DecodeScanPage([]byte{1, 0xFF, 0xFF, 0xFF, 0x7F}); err == nil {
		t.Fatal("corrupt scan page must fail")
	}
}
