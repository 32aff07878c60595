package bench

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	flo "github.com/floruntime/flo/clients/go"
)

// KV scenarios: put and get of Cfg.Size-byte values over a key space of
// Cfg.Keys random keys, against Redis SET/GET and NATS KV put/get.
func init() {
	Register(&Scenario{Name: "kv-put", Doc: "KV put vs Redis SET (AOF always/everysec) and NATS KV put", Cases: kvPutCases})
	Register(&Scenario{Name: "kv-get", Doc: "KV get of prefilled keys vs Redis GET and NATS KV get", Cases: kvGetCases})
	Register(&Scenario{Name: "kv-get-pipelined", Doc: "KV get with PipeDepth goroutines sharing PipeClients flo.Clients", Cases: kvGetPipelinedCases})
}

const natsKVBucket = "bench"

func kvPutCases(e *Env) []Case {
	var cases []Case
	// Each flo mode runs right after its Redis counterpart, so the pair
	// sees the same background load.
	for _, fs := range e.floSystems() {
		if e.peer("redis") {
			cases = append(cases, Case{System: fs.redis, Prepare: redisSetDriver(fs.redisFsync())})
		}
		cases = append(cases, Case{System: fs.name, Compare: []string{fs.redis, NATS}, Prepare: floPutDriver(fs.durability)})
	}
	if e.peer("nats") {
		// NATS first, so every flo line can carry its ratio to it.
		cases = append([]Case{{System: NATS, Prepare: natsKVPutDriver}}, cases...)
	}
	return cases
}

func floPutDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return floOps(durability, func(e *Env, i int, c *flo.Client) Op {
		key, val := keyPicker(i, e.Cfg.Keys), payload(e.Cfg.Size)
		return func(ctx context.Context) (Done, error) {
			_, err := c.KV.Put(ctx, key(), val, nil)
			return Done{}, err
		}
	})
}

func redisSetDriver(fsync string) func(ctx context.Context, e *Env) (Driver, error) {
	return redisOps(fsync, func(e *Env, i int, rc *redis.Client) Op {
		key, val := keyPicker(i, e.Cfg.Keys), payload(e.Cfg.Size)
		return func(ctx context.Context) (Done, error) {
			return Done{}, rc.Set(ctx, key(), val, 0).Err()
		}
	})
}

// natsKV starts a NATS server and creates the KV bucket (file storage, one
// version per key).
func natsKV(ctx context.Context, e *Env) (string, error) {
	url, err := e.NATS(ctx)
	if err != nil {
		return "", err
	}
	nc, js, err := natsConn(url)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsKVBucket, Storage: jetstream.FileStorage, History: 1}); err != nil {
		return "", fmt.Errorf("create KV bucket: %w", err)
	}
	return url, nil
}

// natsKVConn opens connection i's handle on the bench bucket.
func natsKVConn(ctx context.Context, url string) (jetstream.KeyValue, func(), error) {
	nc, js, err := natsConn(url)
	if err != nil {
		return nil, nil, err
	}
	kv, err := js.KeyValue(ctx, natsKVBucket)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return kv, nc.Close, nil
}

func natsKVPutDriver(ctx context.Context, e *Env) (Driver, error) {
	url, err := natsKV(ctx, e)
	if err != nil {
		return nil, err
	}
	val := payload(e.Cfg.Size)
	return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		kv, closeFn, err := natsKVConn(ctx, url)
		if err != nil {
			return nil, nil, err
		}
		key := keyPicker(i, e.Cfg.Keys)
		return func(ctx context.Context) (Done, error) {
			_, err := kv.Put(ctx, key(), val)
			return Done{}, err
		}, closeFn, nil
	}), nil
}

func kvGetCases(e *Env) []Case {
	fs := e.floSystems()[0]
	var cases []Case
	if e.peer("nats") {
		cases = append(cases, Case{System: NATS, Prepare: natsKVGetDriver})
	}
	if e.peer("redis") {
		cases = append(cases, Case{System: fs.redis, Prepare: redisGetDriver(fs.redisFsync())})
	}
	cases = append(cases, Case{System: fs.name, Compare: []string{fs.redis, NATS}, Prepare: floGetDriver(fs.durability)})
	return cases
}

// floPrefill writes every key of the key space.
func floPrefill(ctx context.Context, e *Env, addr string) error {
	val := payload(e.Cfg.Size)
	ks := keySpace(e.Cfg.Keys)
	return e.floFill(ctx, addr, len(ks), func(ctx context.Context, c *flo.Client, i int) error {
		_, err := c.KV.Put(ctx, ks[i], val, nil)
		return err
	})
}

func floGetDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Flo(ctx, durability)
		if err != nil {
			return nil, err
		}
		if err := floPrefill(ctx, e, addr); err != nil {
			return nil, err
		}
		return floConns(addr, func(i int, c *flo.Client) Op { return floGetOp(c, keyPicker(i, e.Cfg.Keys)) }), nil
	}
}

func floGetOp(c *flo.Client, key func() string) Op {
	return func(ctx context.Context) (Done, error) {
		v, err := c.KV.Get(ctx, key(), nil)
		if err == nil && v == nil {
			err = fmt.Errorf("prefilled key not found")
		}
		return Done{}, err
	}
}

func redisGetDriver(fsync string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Redis(ctx, fsync)
		if err != nil {
			return nil, err
		}
		// Prefill with pipelined MSETs.
		rc := redisClient(addr)
		defer rc.Close()
		val := payload(e.Cfg.Size)
		ks := keySpace(e.Cfg.Keys)
		for start := 0; start < len(ks); start += 1000 {
			args := make([]any, 0, 2000)
			for _, k := range ks[start:min(start+1000, len(ks))] {
				args = append(args, k, val)
			}
			if err := rc.MSet(ctx, args...).Err(); err != nil {
				return nil, fmt.Errorf("prefill: %w", err)
			}
		}
		return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
			rc := redisClient(addr)
			if err := rc.Ping(ctx).Err(); err != nil {
				rc.Close()
				return nil, nil, err
			}
			key := keyPicker(i, e.Cfg.Keys)
			return func(ctx context.Context) (Done, error) {
				return Done{}, rc.Get(ctx, key()).Err()
			}, func() { rc.Close() }, nil
		}), nil
	}
}

func natsKVGetDriver(ctx context.Context, e *Env) (Driver, error) {
	url, err := natsKV(ctx, e)
	if err != nil {
		return nil, err
	}
	// Prefill from 50 connections (NATS KV put waits for the store).
	const workers = 50
	kvs := make([]jetstream.KeyValue, workers)
	for w := range kvs {
		kv, closeFn, err := natsKVConn(ctx, url)
		if err != nil {
			return nil, err
		}
		e.OnStop(closeFn)
		kvs[w] = kv
	}
	val := payload(e.Cfg.Size)
	ks := keySpace(e.Cfg.Keys)
	if err := fill(ctx, workers, len(ks), func(ctx context.Context, w, i int) error {
		_, err := kvs[w].Put(ctx, ks[i], val)
		return err
	}); err != nil {
		return nil, err
	}
	return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		kv, closeFn, err := natsKVConn(ctx, url)
		if err != nil {
			return nil, nil, err
		}
		key := keyPicker(i, e.Cfg.Keys)
		return func(ctx context.Context) (Done, error) {
			_, err := kv.Get(ctx, key())
			return Done{}, err
		}, closeFn, nil
	}), nil
}

func kvGetPipelinedCases(e *Env) []Case {
	fs := e.floSystems()[0]
	return []Case{{
		System: fs.name,
		Conns:  e.Cfg.PipeDepth,
		Prepare: func(ctx context.Context, e *Env) (Driver, error) {
			addr, err := e.Flo(ctx, fs.durability)
			if err != nil {
				return nil, err
			}
			if err := floPrefill(ctx, e, addr); err != nil {
				return nil, err
			}
			cs := make([]*flo.Client, e.Cfg.PipeClients)
			for i := range cs {
				if cs[i], err = e.floClient(ctx, addr); err != nil {
					return nil, err
				}
			}
			return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
				return floGetOp(cs[i%len(cs)], keyPicker(i, e.Cfg.Keys)), nil, nil
			}), nil
		},
		Finish: func(r *Result) {
			r.Extra = append(r.Extra, KV{"clients", fmt.Sprint(e.Cfg.PipeClients)}, KV{"depth", fmt.Sprint(e.Cfg.PipeDepth)})
		},
	}}
}
