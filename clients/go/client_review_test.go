package flo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// Close fails a blocking call in flight, as it does a pipelined one: the
// call's pooled connection is closed too, so a Forever wait returns.
func TestClient_CloseEndsBlockingCallsInFlight(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	c, err := flo.Dial(context.Background(), srv.Addr, flo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Queue.Dequeue(context.Background(), "empty", 1, &flo.QueueDequeueOptions{Block: flo.Forever})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // parked on the server
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, flo.ErrConnection) && !errors.Is(err, flo.ErrClosed) {
			t.Fatalf("dequeue after Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a blocking dequeue kept waiting after Close")
	}
}
