package flo_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// diskRecord is record i of TestStream_RecordsLiveOnDisk: 1 MiB of bytes
// that do not compress, derived from i so they can be checked later.
func diskRecord(i int) []byte {
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)}).Read(b)
	return b
}

// rssBytes is the resident memory of process pid.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// A stream lives on disk, not in the server's memory (issue 4: a stream
// larger than RAM must work, and reading old offsets must not load the
// whole stream): after a restart, a server holding a 256 MiB stream reads
// its first, a middle and its last record with a resident set far below the
// stream's size.
func TestStream_RecordsLiveOnDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	const records = 256
	p := flotest.StartProcess(t, "", "--cache-size", strconv.Itoa(8<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := flotest.Dial(t, p.Addr, flo.Options{Timeout: time.Minute})
	var wg sync.WaitGroup
	errs := make(chan error, records)
	next := make(chan int, records)
	for i := range records {
		next <- i
	}
	close(next)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := c.Stream.Append(ctx, "big", diskRecord(i), &flo.StreamAppendOptions{PartitionKey: strconv.Itoa(i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.Close()
	p.Kill()

	p = flotest.StartProcess(t, p.DataDir, "--cache-size", strconv.Itoa(8<<20))
	c = flotest.Dial(t, p.Addr, flo.Options{Timeout: time.Minute})
	info, err := c.Stream.Info(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.FirstOffset != 1 || info.LastOffset != records || info.Count != records || info.Bytes < records<<20 {
		t.Fatalf("info after restart: %+v", info)
	}
	for _, off := range []uint64{1, records / 2, records} {
		recs, err := c.Stream.Read(ctx, "big", &flo.StreamReadOptions{Offset: off, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Offset != off {
			t.Fatalf("read at %d: %d records", off, len(recs))
		}
		i, err := strconv.Atoi(recs[0].PartitionKey)
		if err != nil {
			t.Fatalf("record %d has partition key %q", off, recs[0].PartitionKey)
		}
		if !bytes.Equal(recs[0].Payload, diskRecord(i)) {
			t.Fatalf("record %d (appended as %d) came back changed", off, i)
		}
	}
	rss := rssBytes(t, p.Pid())
	t.Logf("server resident set after the reads: %d MiB (stream %d MiB)", rss>>20, records)
	if rss > records<<20/2 {
		t.Fatalf("server resident set %d MiB holding a %d MiB stream: records are kept in memory", rss>>20, records)
	}
}
