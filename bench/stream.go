package bench

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	flo "github.com/floruntime/flo/clients/go"
)

// Stream scenarios: append of Cfg.Size-byte records to one stream from every
// connection (vs Redis XADD and JetStream synchronous publish with file
// storage), and a sequential read of Cfg.Records records in batches of
// Cfg.Batch (vs Redis XRANGE with the same COUNT).
func init() {
	Register(&Scenario{Name: "stream-append", Doc: "stream append vs Redis XADD (AOF always/everysec) and JetStream sync publish", Cases: streamAppendCases})
	Register(&Scenario{Name: "stream-read", Doc: "sequential read of Records records in batches of Batch, one connection; records/s", Cases: streamReadCases})
}

const (
	benchStream = "bench-stream"
	natsStream  = "BENCH"
	natsSubject = "bench.append"
)

func streamAppendCases(e *Env) []Case {
	var cases []Case
	if e.peer("nats") {
		cases = append(cases, Case{System: NATS, Prepare: natsPublishDriver})
	}
	for _, fs := range e.floSystems() {
		if e.peer("redis") {
			cases = append(cases, Case{System: fs.redis, Prepare: redisXAddDriver(fs.redisFsync())})
		}
		cases = append(cases, Case{System: fs.name, Compare: []string{fs.redis, NATS}, Prepare: floAppendDriver(fs.durability)})
	}
	return cases
}

func floAppendDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return floOps(durability, func(e *Env, _ int, c *flo.Client) Op {
		val := payload(e.Cfg.Size)
		return func(ctx context.Context) (Done, error) {
			_, err := c.Stream.Append(ctx, benchStream, val, nil)
			return Done{}, err
		}
	})
}

func redisXAddDriver(fsync string) func(ctx context.Context, e *Env) (Driver, error) {
	return redisOps(fsync, func(e *Env, _ int, rc *redis.Client) Op {
		args := &redis.XAddArgs{Stream: benchStream, ID: "*", Values: []any{"v", payload(e.Cfg.Size)}}
		return func(ctx context.Context) (Done, error) {
			return Done{}, rc.XAdd(ctx, args).Err()
		}
	})
}

// natsJS starts a NATS server with one stream on subjects, file storage,
// with the given retention.
func natsJS(ctx context.Context, e *Env, subjects []string, retention jetstream.RetentionPolicy) (string, error) {
	url, err := e.NATS(ctx)
	if err != nil {
		return "", err
	}
	nc, js, err := natsConn(url)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: natsStream, Subjects: subjects, Storage: jetstream.FileStorage, Retention: retention})
	if err != nil {
		return "", fmt.Errorf("create stream: %w", err)
	}
	return url, nil
}

func natsPublishDriver(ctx context.Context, e *Env) (Driver, error) {
	url, err := natsJS(ctx, e, []string{natsSubject}, jetstream.LimitsPolicy)
	if err != nil {
		return nil, err
	}
	val := payload(e.Cfg.Size)
	return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		nc, js, err := natsConn(url)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) (Done, error) {
			_, err := js.Publish(ctx, natsSubject, val)
			return Done{}, err
		}, nc.Close, nil
	}), nil
}

func streamReadCases(e *Env) []Case {
	fs := e.floSystems()[0]
	// Each read returns at least one record; the run ends when Records are
	// read (a server may return fewer than Batch per read: flo at most 1,000).
	ops := int64(e.Cfg.Records)
	extra := func(r *Result) {
		r.Extra = append(r.Extra, KV{"records", fmt.Sprint(e.Cfg.Records)}, KV{"batch", fmt.Sprint(e.Cfg.Batch)})
	}
	var cases []Case
	if e.peer("redis") {
		cases = append(cases, Case{System: fs.redis, Conns: 1, Ops: ops, NoWarmup: true, Prepare: redisXRangeDriver(fs.redisFsync()), Finish: extra})
	}
	cases = append(cases, Case{System: fs.name, Conns: 1, Ops: ops, NoWarmup: true, Compare: []string{fs.redis}, Prepare: floReadDriver(fs.durability), Finish: extra})
	return cases
}

func floReadDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Flo(ctx, durability)
		if err != nil {
			return nil, err
		}
		// Prefill through a few pipelined clients.
		val := payload(e.Cfg.Size)
		if err := e.floFill(ctx, addr, e.Cfg.Records, func(ctx context.Context, c *flo.Client, _ int) error {
			_, err := c.Stream.Append(ctx, benchStream, val, nil)
			return err
		}); err != nil {
			return nil, err
		}
		return floConns(addr, func(_ int, c *flo.Client) Op {
			var next uint64
			read := 0
			return func(ctx context.Context) (Done, error) {
				if read >= e.Cfg.Records {
					return Done{}, ErrDrained
				}
				rs, err := c.Stream.Read(ctx, benchStream, &flo.StreamReadOptions{Offset: next, Count: min(e.Cfg.Batch, e.Cfg.Records-read)})
				if err != nil {
					return Done{}, err
				}
				if len(rs) == 0 {
					return Done{}, ErrDrained
				}
				next = rs[len(rs)-1].Offset + 1
				read += len(rs)
				return Done{N: len(rs)}, nil
			}
		}), nil
	}
}

func redisXRangeDriver(fsync string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Redis(ctx, fsync)
		if err != nil {
			return nil, err
		}
		rc := redisClient(addr)
		defer rc.Close()
		val := payload(e.Cfg.Size)
		for done := 0; done < e.Cfg.Records; {
			p := rc.Pipeline()
			n := min(1000, e.Cfg.Records-done)
			for range n {
				p.XAdd(ctx, &redis.XAddArgs{Stream: benchStream, ID: "*", Values: []any{"v", val}})
			}
			if _, err := p.Exec(ctx); err != nil {
				return nil, fmt.Errorf("prefill: %w", err)
			}
			done += n
		}
		return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
			rc := redisClient(addr)
			// Connect now, as the flo side does, not in the first read.
			if err := rc.Ping(ctx).Err(); err != nil {
				rc.Close()
				return nil, nil, err
			}
			start := "-"
			read := 0
			return func(ctx context.Context) (Done, error) {
				if read >= e.Cfg.Records {
					return Done{}, ErrDrained
				}
				msgs, err := rc.XRangeN(ctx, benchStream, start, "+", int64(min(e.Cfg.Batch, e.Cfg.Records-read))).Result()
				if err != nil {
					return Done{}, err
				}
				if len(msgs) == 0 {
					return Done{}, ErrDrained
				}
				start = "(" + msgs[len(msgs)-1].ID
				read += len(msgs)
				return Done{N: len(msgs)}, nil
			}, func() { rc.Close() }, nil
		}), nil
	}
}
