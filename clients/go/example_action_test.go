package flo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	flo "github.com/floruntime/flo/clients/go"
)

// exampleClient starts a throwaway server (exampleServer, in
// example_kv_test.go) and returns a client and a function that stops both.
func exampleClient() (*flo.Client, func()) {
	addr, stop := exampleServer()
	c, err := flo.Dial(context.Background(), addr, flo.Options{})
	if err != nil {
		panic(err)
	}
	return c, func() { c.Close(); stop() }
}

// Register an action, invoke it, and run the task by hand with the raw
// worker calls.
func ExampleAction_Invoke() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	retries := 2
	if err := c.Action.Register(ctx, "resize-image", &flo.ActionRegisterOptions{Timeout: time.Minute, MaxRetries: &retries}); err != nil {
		panic(err)
	}
	runID, err := c.Action.Invoke(ctx, "resize-image", []byte(`{"w":100}`), &flo.ActionInvokeOptions{IdempotencyKey: "img-42"})
	if err != nil {
		panic(err)
	}

	task, err := c.Worker.Await(ctx, "worker-1", []string{"resize-image"}, &flo.WorkerAwaitOptions{Block: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	fmt.Printf("claimed %s attempt %d input %s\n", task.ActionName, task.Attempt, task.Input)
	if err := c.Worker.Complete(ctx, "worker-1", task.ID, []byte("resized"), nil); err != nil {
		panic(err)
	}

	st, err := c.Action.Status(ctx, runID, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.State, string(st.Result), task.ID == runID)
	// Output:
	// claimed resize-image attempt 1 input {"w":100}
	// completed resized true
}

// A TaskWorker runs handlers with retries and lease renewal;
// InvokeAndWait invokes and waits for the result.
func ExampleAction_InvokeAndWait() {
	c, stop := exampleClient()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w := flo.NewTaskWorker(c, "worker-1", &flo.TaskWorkerOptions{Concurrency: 4})
	w.Handle("shout", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		if len(t.Input) == 0 {
			return nil, flo.Permanent(errors.New("nothing to shout")) // not retried
		}
		return []byte(strings.ToUpper(string(t.Input)) + "!"), nil
	}, &flo.ActionRegisterOptions{}) // registers "shout" with the default settings
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for {
		// Wait until the worker has registered the action.
		if l, err := c.Action.List(wctx, &flo.ActionListOptions{Prefix: "shout"}); err == nil && len(l.Actions) == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, err := c.Action.InvokeAndWait(wctx, "shout", []byte("hello"), nil)
	fmt.Println(st.State, string(st.Result), err)

	_, err = c.Action.InvokeAndWait(wctx, "shout", nil, nil)
	var runErr *flo.RunError
	if errors.As(err, &runErr) {
		fmt.Println(runErr.State, runErr.Message)
	}

	cancel() // stop claiming, let running handlers finish
	fmt.Println(<-done)
	// Output:
	// completed HELLO! <nil>
	// failed nothing to shout
	// <nil>
}

// List actions and workers.
func ExampleWorker_List() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	for _, name := range []string{"resize-image", "crop-image"} {
		if err := c.Action.Register(ctx, name, nil); err != nil {
			panic(err)
		}
	}
	if err := c.Worker.Register(ctx, "worker-1", []string{"resize-image", "crop-image"}, &flo.WorkerRegisterOptions{Capacity: 8}); err != nil {
		panic(err)
	}
	actions, err := c.Action.List(ctx, &flo.ActionListOptions{Prefix: ""})
	if err != nil {
		panic(err)
	}
	for _, a := range actions.Actions {
		fmt.Println(a.Name, a.Timeout, a.MaxRetries)
	}
	workers, err := c.Worker.List(ctx, nil)
	if err != nil {
		panic(err)
	}
	for _, w := range workers.Workers {
		fmt.Println(w.ID, w.Status, w.Capacity, len(w.TaskTypes), w.InFlight)
	}
	// Output:
	// crop-image 30s 3
	// resize-image 30s 3
	// worker-1 active 8 2 0
}
