package flo_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// diskRecord is record (or message) i of the tests below: 1 MiB of bytes
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

// diskServer starts a server with a small block cache, runs fill against
// it, kills it (-9) and starts it again on the same data directory, so
// nothing of what fill wrote is in memory unless loading put it there.
func diskServer(t *testing.T, fill func(c *flo.Client)) (*flotest.Process, *flo.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	cache := []string{"--cache-size", strconv.Itoa(8 << 20)}
	p := flotest.StartProcess(t, "", cache...)
	c := flotest.Dial(t, p.Addr, flo.Options{Timeout: time.Minute})
	fill(c)
	c.Close()
	p.Kill()
	p = flotest.StartProcess(t, p.DataDir, cache...)
	return p, flotest.Dial(t, p.Addr, flo.Options{Timeout: time.Minute})
}

// fillParallel calls write(i) for i in [0, n) from four goroutines.
func fillParallel(t *testing.T, n int, write func(i int) error) {
	t.Helper()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := write(i); err != nil {
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
}

// checkResidentSet fails the test if the server holds more than half of
// the held bytes in memory.
func checkResidentSet(t *testing.T, p *flotest.Process, held int64, what string) {
	t.Helper()
	rss := rssBytes(t, p.Pid())
	t.Logf("server resident set: %d MiB, holding %d MiB of %s", rss>>20, held>>20, what)
	if rss > held/2 {
		t.Fatalf("server resident set %d MiB holding %d MiB of %s: they are kept in memory", rss>>20, held>>20, what)
	}
}

// diskRecords is how many 1 MiB records or messages the tests below write.
const diskRecords = 256

// A stream lives on disk, not in the server's memory (issue 4: a stream
// larger than RAM must work, and reading old offsets must not load the
// whole stream): after a restart, a server holding a 256 MiB stream reads
// its first, a middle and its last record with a resident set far below the
// stream's size.
func TestStream_RecordsLiveOnDisk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, c := diskServer(t, func(c *flo.Client) {
		fillParallel(t, diskRecords, func(i int) error {
			_, err := c.Stream.Append(ctx, "big", diskRecord(i), &flo.StreamAppendOptions{PartitionKey: strconv.Itoa(i)})
			return err
		})
	})
	info, err := c.Stream.Info(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.FirstOffset != 1 || info.LastOffset != diskRecords || info.Count != diskRecords || info.Bytes < diskRecords<<20 {
		t.Fatalf("info after restart: %+v", info)
	}
	for _, off := range []uint64{1, diskRecords / 2, diskRecords} {
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
	checkResidentSet(t, p, diskRecords<<20, "stream records")
}

// Queue payloads live on disk too; memory holds each message's metadata
// (and, until a restart, a bounded cache of undelivered payloads): after a
// restart a server holding 256 MiB of messages peeks the first, dequeues
// two and reads the DLQ with a resident set far below their size.
func TestQueue_PayloadsLiveOnDisk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seqs := make([]uint64, diskRecords)
	p, c := diskServer(t, func(c *flo.Client) {
		fillParallel(t, diskRecords, func(i int) error {
			seq, err := c.Queue.Enqueue(ctx, "big", diskRecord(i), nil)
			seqs[i] = seq
			return err
		})
	})
	check := func(what string, ms []flo.QueueMessage) {
		t.Helper()
		for _, m := range ms {
			i := slices.Index(seqs, m.Seq)
			if i < 0 {
				t.Fatalf("%s: seq %d was never enqueued", what, m.Seq)
			}
			if !bytes.Equal(m.Payload, diskRecord(i)) {
				t.Fatalf("%s: message %d came back changed", what, m.Seq)
			}
		}
	}
	if st := mustStats(t, c, "big"); st.Ready != diskRecords {
		t.Fatalf("stats after restart: %+v", st)
	}
	peeked, err := c.Queue.Peek(ctx, "big", 1, nil)
	if err != nil || len(peeked) != 1 {
		t.Fatalf("peek: %d messages, %v", len(peeked), err)
	}
	check("peek", peeked)
	got := mustDequeue(t, c, "big", 2, nil)
	if len(got) != 2 || got[0].Seq != peeked[0].Seq {
		t.Fatalf("dequeued %d messages, first %d; peeked %d", len(got), got[0].Seq, peeked[0].Seq)
	}
	check("dequeue", got)
	if err := c.Queue.Nack(ctx, "big", []uint64{got[1].Seq}, &flo.QueueNackOptions{ToDLQ: true}); err != nil {
		t.Fatal(err)
	}
	dl, err := c.Queue.DLQList(ctx, "big", nil)
	if err != nil || len(dl) != 1 {
		t.Fatalf("DLQ: %d messages, %v", len(dl), err)
	}
	check("DLQ list", dl)
	checkResidentSet(t, p, diskRecords<<20, "queue payloads")
}
