package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	flo "github.com/floruntime/flo/clients/go"
)

// Queue scenarios: enqueue of Cfg.Size-byte messages to one queue from
// every connection (vs Redis LPUSH), and the consume cycle — dequeue one
// message, then ack it — over a queue prefilled with Cfg.Messages messages
// (vs Redis RPOP, which has no ack, and a JetStream work-queue stream read
// by a pull consumer with explicit, confirmed acks). A cycle case ends when
// its duration is up or the queue is empty.
func init() {
	Register(&Scenario{Name: "queue-enqueue", Doc: "queue enqueue vs Redis LPUSH (AOF always/everysec)", Cases: queueEnqueueCases})
	Register(&Scenario{Name: "queue-cycle", Doc: "dequeue+ack of prefilled messages vs Redis RPOP and JetStream pull+ack", Cases: queueCycleCases})
}

const (
	benchQueue   = "bench-queue"
	natsWQStream = "BENCHWQ"
	natsWQSubj   = "benchwq.jobs"
	natsConsumer = "workers"
)

func queueEnqueueCases(e *Env) []Case {
	var cases []Case
	for _, fs := range e.floSystems() {
		if e.peer("redis") {
			cases = append(cases, Case{System: fs.redis, Prepare: redisLPushDriver(fs.redisFsync())})
		}
		cases = append(cases, Case{System: fs.name, Compare: []string{fs.redis}, Prepare: floEnqueueDriver(fs.durability)})
	}
	return cases
}

func floEnqueueDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return floOps(durability, func(e *Env, _ int, c *flo.Client) Op {
		val := payload(e.Cfg.Size)
		return func(ctx context.Context) (Done, error) {
			_, err := c.Queue.Enqueue(ctx, benchQueue, val, nil)
			return Done{}, err
		}
	})
}

func redisLPushDriver(fsync string) func(ctx context.Context, e *Env) (Driver, error) {
	return redisOps(fsync, func(e *Env, _ int, rc *redis.Client) Op {
		val := payload(e.Cfg.Size)
		return func(ctx context.Context) (Done, error) {
			return Done{}, rc.LPush(ctx, benchQueue, val).Err()
		}
	})
}

func queueCycleCases(e *Env) []Case {
	var cases []Case
	extra := func(r *Result) {
		r.Extra = append(r.Extra, KV{"prefill", fmt.Sprint(e.Cfg.Messages)})
	}
	if e.peer("nats") {
		cases = append(cases, Case{System: NATS, Prepare: natsCycleDriver, Finish: extra})
	}
	for _, fs := range e.floSystems() {
		if e.peer("redis") {
			cases = append(cases, Case{System: fs.redis, Prepare: redisRPopDriver(fs.redisFsync()), Finish: extra})
		}
		cases = append(cases, Case{System: fs.name, Compare: []string{fs.redis, NATS}, Prepare: floCycleDriver(fs.durability, false), Finish: extra})
		cases = append(cases, Case{System: fs.name + "-acknext", Compare: []string{fs.redis, NATS}, Prepare: floCycleDriver(fs.durability, true), Finish: extra})
	}
	return cases
}

// floCycleDriver consumes with a dequeue and an ack per message. With
// ackNext each dequeue carries the ack of the message before it (the
// QueueDequeueOptions.Ack extension): one round trip and one durable write
// per message instead of two, as a consumer that takes one message at a
// time would run.
func floCycleDriver(durability string, ackNext bool) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Flo(ctx, durability)
		if err != nil {
			return nil, err
		}
		val := payload(e.Cfg.Size)
		if err := e.floFill(ctx, addr, e.Cfg.Messages, func(ctx context.Context, c *flo.Client, _ int) error {
			_, err := c.Queue.Enqueue(ctx, benchQueue, val, nil)
			return err
		}); err != nil {
			return nil, err
		}
		return floConns(addr, func(_ int, c *flo.Client) Op {
			seqs := make([]uint64, 1)
			var o flo.QueueDequeueOptions
			return func(ctx context.Context) (Done, error) {
				ms, err := c.Queue.Dequeue(ctx, benchQueue, 1, &o)
				if err != nil {
					return Done{}, err
				}
				if len(ms) == 0 {
					return Done{}, ErrDrained
				}
				seqs[0] = ms[0].Seq
				if ackNext {
					o.Ack = seqs // acked by the next dequeue
					return Done{}, nil
				}
				return Done{}, c.Queue.Ack(ctx, benchQueue, seqs, nil)
			}
		}), nil
	}
}

func redisRPopDriver(fsync string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := e.Redis(ctx, fsync)
		if err != nil {
			return nil, err
		}
		rc := redisClient(addr)
		defer rc.Close()
		val := payload(e.Cfg.Size)
		for done := 0; done < e.Cfg.Messages; {
			n := min(1000, e.Cfg.Messages-done)
			vals := make([]any, n)
			for i := range vals {
				vals[i] = val
			}
			if err := rc.LPush(ctx, benchQueue, vals...).Err(); err != nil {
				return nil, fmt.Errorf("prefill: %w", err)
			}
			done += n
		}
		return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
			rc := redisClient(addr)
			if err := rc.Ping(ctx).Err(); err != nil {
				rc.Close()
				return nil, nil, err
			}
			return func(ctx context.Context) (Done, error) {
				err := rc.RPop(ctx, benchQueue).Err()
				if errors.Is(err, redis.Nil) {
					return Done{}, ErrDrained
				}
				return Done{}, err
			}, func() { rc.Close() }, nil
		}), nil
	}
}

func natsCycleDriver(ctx context.Context, e *Env) (Driver, error) {
	url, err := e.NATS(ctx)
	if err != nil {
		return nil, err
	}
	nc, js, err := natsConn(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natsWQStream, Subjects: []string{natsWQSubj},
		Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}
	if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: natsConsumer,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: -1}); err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	// Prefill with asynchronous publishes, a window of 1,000 at a time
	// (more stalls the client), waiting for each window's acks.
	val := payload(e.Cfg.Size)
	for done := 0; done < e.Cfg.Messages; {
		n := min(1000, e.Cfg.Messages-done)
		for range n {
			if _, err := js.PublishAsync(natsWQSubj, val); err != nil {
				return nil, fmt.Errorf("prefill: %w", err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			return nil, fmt.Errorf("prefill: publish acks did not arrive")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		done += n
	}
	// Each connection binds one pull subscription to the durable consumer
	// and fetches one message at a time into its inbox. (jetstream's
	// Consumer.Fetch subscribes a new inbox for every fetch and unsubscribes
	// it after: a SUB and an UNSUB per message, which no NATS consumer that
	// lives longer than one message pays; in six alternating 3 s rounds they
	// cost the server 3–20% more CPU per cycle, the client 15–30%, and NATS
	// a median ~8% of its cycles/s.)
	return DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
		if err != nil {
			return nil, nil, err
		}
		js, err := nc.JetStream()
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		sub, err := js.PullSubscribe(natsWQSubj, natsConsumer, nats.Bind(natsWQStream, natsConsumer))
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return func(ctx context.Context) (Done, error) {
			ms, err := sub.Fetch(1, nats.MaxWait(time.Second))
			if errors.Is(err, nats.ErrTimeout) {
				return Done{}, ErrDrained
			}
			if err != nil {
				return Done{}, err
			}
			if len(ms) != 1 {
				return Done{}, fmt.Errorf("fetched %d messages, want 1", len(ms))
			}
			// AckSync waits for the server to confirm the ack, as DoubleAck
			// does and as ours does.
			if err := ms[0].AckSync(nats.Context(ctx)); err != nil {
				return Done{}, err
			}
			return Done{}, nil
		}, nc.Close, nil
	}), nil
}
