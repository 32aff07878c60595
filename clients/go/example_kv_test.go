package flo_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// exampleServer starts a throwaway server for an Example and returns its
// address and a function that stops it (and removes its data).
func exampleServer() (addr string, stop func()) {
	srv, err := flotest.New(flotest.Options{})
	if err != nil {
		panic(err)
	}
	return srv.Addr, srv.Stop
}

func ExampleKV_Put() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := flo.Dial(ctx, addr, flo.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	v1, _ := c.KV.Put(ctx, "counter", []byte("1"), nil)
	// Compare-and-swap: succeeds only while the key is still at version 1.
	v2, _ := c.KV.Put(ctx, "counter", []byte("2"), &flo.PutOptions{CASVersion: &v1})
	_, err = c.KV.Put(ctx, "counter", []byte("3"), &flo.PutOptions{CASVersion: &v1})
	fmt.Println(v1, v2, errors.Is(err, flo.ErrConflict))

	value, _ := c.KV.Get(ctx, "counter", nil)
	missing, _ := c.KV.Get(ctx, "nope", nil)
	fmt.Printf("%s %v\n", value, missing == nil)
	// Output:
	// 1 2 true
	// 2 true
}

func ExampleKV_Get_blocking() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()

	go func() {
		time.Sleep(50 * time.Millisecond)
		c.KV.Put(ctx, "job:42:result", []byte("done"), nil)
	}()
	// Waits until the key exists (or 5 s pass, returning nil).
	v, _ := c.KV.Get(ctx, "job:42:result", &flo.GetOptions{Block: 5 * time.Second})
	fmt.Printf("%s\n", v)
	// Output: done
}

func ExampleKV_Scan() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()

	for _, k := range []string{"user:1", "user:2", "user:3", "order:1"} {
		c.KV.Put(ctx, k, []byte("x"), nil)
	}
	o := &flo.ScanOptions{Limit: 2, KeysOnly: true}
	for {
		page, err := c.KV.Scan(ctx, "user:", o)
		if err != nil {
			panic(err)
		}
		for _, e := range page.Entries {
			fmt.Println(e.Key)
		}
		if !page.HasMore {
			break
		}
		o.Cursor = page.Cursor
	}
	// Output:
	// user:1
	// user:2
	// user:3
}

func ExampleKV_History() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()

	for _, v := range []string{"draft", "review", "published"} {
		c.KV.Put(ctx, "doc", []byte(v), nil)
	}
	versions, _ := c.KV.History(ctx, "doc", &flo.HistoryOptions{Limit: 2})
	for _, v := range versions {
		fmt.Printf("v%d %s\n", v.Version, v.Value)
	}
	// Output:
	// v3 published
	// v2 review
}
