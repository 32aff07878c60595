package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	flo "github.com/floruntime/flo/clients/go"
)

// callTimeout bounds each call of a measured operation: long enough never to
// fire on a loaded machine, short enough that a hung server ends the run.
const callTimeout = 30 * time.Second

// benchNamespace is the flo namespace every scenario uses.
const benchNamespace = "bench"

// dialFlo opens one flo.Client, i.e. one TCP connection.
func dialFlo(ctx context.Context, addr string) (*flo.Client, error) {
	return flo.Dial(ctx, addr, flo.Options{Namespace: benchNamespace, Timeout: callTimeout, MaxPending: 4096})
}

// floClient opens a flo.Client closed when the case ends.
func (e *Env) floClient(ctx context.Context, addr string) (*flo.Client, error) {
	c, err := dialFlo(ctx, addr)
	if err != nil {
		return nil, err
	}
	e.OnStop(func() { c.Close() })
	return c, nil
}

// floFill runs put for i in [0, n) against addr through a few pipelined
// clients (closed when the case ends): how scenarios prefill flo.
func (e *Env) floFill(ctx context.Context, addr string, n int, put func(ctx context.Context, c *flo.Client, i int) error) error {
	const clients, workers = 4, 512
	cs := make([]*flo.Client, clients)
	for i := range cs {
		c, err := e.floClient(ctx, addr)
		if err != nil {
			return err
		}
		cs[i] = c
	}
	return fill(ctx, workers, n, func(ctx context.Context, w, i int) error { return put(ctx, cs[w%clients], i) })
}

// redisClient opens a go-redis client with exactly one connection, so that
// 50 clients are 50 connections as on the flo side.
func redisClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            addr,
		PoolSize:        1,
		MinIdleConns:    0,
		DisableIdentity: true,
		ReadTimeout:     callTimeout,
		WriteTimeout:    callTimeout,
	})
}

// floOps is the Prepare of a case that gives each connection its own
// flo.Client on a flo server of the given durability; newOp builds
// connection i's operation.
func floOps(durability string, newOp func(e *Env, i int, c *flo.Client) Op) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Flo(ctx, durability)
		if err != nil {
			return nil, err
		}
		return floConns(addr, func(i int, c *flo.Client) Op { return newOp(e, i, c) }), nil
	}
}

// floConns is the Driver that gives each connection its own flo.Client on
// addr, running the operation newOp builds for it.
func floConns(addr string, newOp func(i int, c *flo.Client) Op) Driver {
	return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		c, err := dialFlo(ctx, addr)
		if err != nil {
			return nil, nil, err
		}
		return newOp(i, c), func() { c.Close() }, nil
	})
}

// redisOps is floOps for Redis with the given appendfsync policy: one
// single-connection client per connection.
func redisOps(fsync string, newOp func(e *Env, i int, rc *redis.Client) Op) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Redis(ctx, fsync)
		if err != nil {
			return nil, err
		}
		return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
			rc := redisClient(addr)
			if err := rc.Ping(ctx).Err(); err != nil {
				rc.Close()
				return nil, nil, err
			}
			return newOp(e, i, rc), func() { rc.Close() }, nil
		}), nil
	}
}

// natsConn opens one NATS connection and its JetStream context.
func natsConn(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// payload is a value of the configured size.
func payload(size int) []byte { return bytes.Repeat([]byte("x"), size) }

// keyName is the i-th key of the key space; the same names are valid for
// flo, Redis and NATS KV.
func keyName(i int) string { return fmt.Sprintf("k%012d", i) }

var (
	keysMu sync.Mutex
	keys   []string
)

// keySpace returns the names of the first n keys, built once, so choosing a
// key costs the load generator (which shares the CPUs with the server)
// nothing.
func keySpace(n int) []string {
	keysMu.Lock()
	defer keysMu.Unlock()
	for len(keys) < n {
		keys = append(keys, keyName(len(keys)))
	}
	return keys[:n:n]
}

// keyPicker returns random keys of a key space of n, seeded per connection
// so runs are repeatable.
func keyPicker(conn, n int) func() string {
	ks := keySpace(n)
	r := rand.New(rand.NewPCG(uint64(conn)+1, 0x5eed))
	return func() string { return ks[r.IntN(len(ks))] }
}

// fill runs fn(i) for i in [0, n) on `workers` goroutines and returns the
// first error.
func fill(ctx context.Context, workers, n int, fn func(ctx context.Context, worker, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, w, i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("prefill item %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
