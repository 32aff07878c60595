package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	flo "github.com/floruntime/flo/clients/go"
)

func queueCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "Priority queues with leases, retries and a dead-letter queue"}
	cf := addClientFlags(cmd)

	var priority uint8
	var delay time.Duration
	var dedup string
	enqueue := &cobra.Command{
		Use:   "enqueue QUEUE [PAYLOAD|-]",
		Short: "Add a message (standard input with -; empty if omitted); prints its seq",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var payload []byte
			if len(args) == 2 {
				if args[1] == "-" {
					b, err := io.ReadAll(os.Stdin)
					if err != nil {
						return err
					}
					payload = b
				} else {
					payload = []byte(args[1])
				}
			}
			o := &flo.QueueEnqueueOptions{Priority: priority, Delay: delay, DedupKey: dedup}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				seq, err := c.Queue.Enqueue(ctx, args[0], payload, o)
				if err != nil {
					return err
				}
				fmt.Printf("OK seq %d\n", seq)
				return nil
			})
		},
	}
	enqueue.Flags().Uint8Var(&priority, "priority", 0, "0-255; higher is dequeued first")
	enqueue.Flags().DurationVar(&delay, "delay", 0, "keep the message invisible this long (e.g. 30s)")
	enqueue.Flags().StringVar(&dedup, "dedup-key", "", "deduplicate: a repeat within 5 minutes (or while queued) returns the original seq")

	var count int
	var block, visibility time.Duration
	var autoAck bool
	dequeue := &cobra.Command{
		Use:   "dequeue QUEUE",
		Short: "Lease messages; prints seq<TAB>payload per message",
		Long: "Lease up to --count messages and print one line per message: seq, a tab, the payload.\n" +
			"The messages stay invisible for --visibility unless acked (flo queue ack), nacked or touched;\n" +
			"with --ack they are acked as soon as they are printed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				ms, err := c.Queue.Dequeue(ctx, args[0], count, &flo.QueueDequeueOptions{Block: block, Visibility: visibility})
				if err != nil {
					return err
				}
				printQueueMessages(ms)
				if autoAck && len(ms) > 0 {
					seqs := make([]uint64, len(ms))
					for i, m := range ms {
						seqs[i] = m.Seq
					}
					return c.Queue.Ack(ctx, args[0], seqs, nil)
				}
				return nil
			})
		},
	}
	dequeue.Flags().IntVar(&count, "count", 1, "messages to lease (1-100)")
	dequeue.Flags().DurationVar(&block, "block", 0, "wait up to this long for a message (negative = forever)")
	dequeue.Flags().DurationVar(&visibility, "visibility", 0, "lease duration (default 30s, max 12h)")
	dequeue.Flags().BoolVar(&autoAck, "ack", false, "ack the messages once printed")

	seqCmd := func(use, short string, fn func(ctx context.Context, c *flo.Client, queue string, seqs []uint64) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " QUEUE SEQ...",
			Short: short,
			Args:  cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				seqs, err := parseQueueSeqs(args[1:])
				if err != nil {
					return err
				}
				return cf.run(func(ctx context.Context, c *flo.Client) error {
					if err := fn(ctx, c, args[0], seqs); err != nil {
						return err
					}
					fmt.Println("OK")
					return nil
				})
			},
		}
	}
	ack := seqCmd("ack", "Remove messages for good (unknown seqs are ignored)", func(ctx context.Context, c *flo.Client, q string, seqs []uint64) error {
		return c.Queue.Ack(ctx, q, seqs, nil)
	})
	touch := seqCmd("touch", "Renew leases by their visibility timeout", func(ctx context.Context, c *flo.Client, q string, seqs []uint64) error {
		return c.Queue.Touch(ctx, q, seqs, nil)
	})
	var toDLQ bool
	var nackDelay time.Duration
	var reason string
	nack := seqCmd("nack", "Return leased messages to the queue (or to the DLQ with --dlq)", func(ctx context.Context, c *flo.Client, q string, seqs []uint64) error {
		return c.Queue.Nack(ctx, q, seqs, &flo.QueueNackOptions{ToDLQ: toDLQ, Delay: nackDelay, Reason: reason})
	})
	nack.Flags().BoolVar(&toDLQ, "dlq", false, "move the messages to the dead-letter queue")
	nack.Flags().DurationVar(&nackDelay, "delay", 0, "redeliver only after this long")
	nack.Flags().StringVar(&reason, "reason", "", "why the messages failed (shown by dlq list)")

	var peekCount int
	peek := &cobra.Command{
		Use:   "peek QUEUE",
		Short: "Show ready messages in dequeue order without leasing them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				ms, err := c.Queue.Peek(ctx, args[0], peekCount, nil)
				if err != nil {
					return err
				}
				printQueueMessages(ms)
				return nil
			})
		},
	}
	peek.Flags().IntVar(&peekCount, "count", 10, "messages to show (1-100)")

	stats := &cobra.Command{
		Use:   "stats QUEUE",
		Short: "Show how many messages are ready, delayed, in flight and dead-lettered",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				s, err := c.Queue.Stats(ctx, args[0], nil)
				if err != nil {
					return err
				}
				fmt.Printf("ready\t%d\ndelayed\t%d\nin_flight\t%d\ndlq\t%d\n", s.Ready, s.Delayed, s.InFlight, s.DLQ)
				return nil
			})
		},
	}

	dlq := &cobra.Command{Use: "dlq", Short: "Inspect and repair a queue's dead-letter queue"}
	var limit int
	dlqList := &cobra.Command{
		Use:   "list QUEUE",
		Short: "List dead letters, oldest first: seq, deliveries, time, reason, payload (tab-separated)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				ms, err := c.Queue.DLQList(ctx, args[0], &flo.QueueDLQListOptions{Limit: limit})
				if err != nil {
					return err
				}
				for _, m := range ms {
					fmt.Printf("%d\t%d\t%s\t%s\t%s\n", m.Seq, m.Deliveries, m.DeadAt.UTC().Format(time.RFC3339Nano), strconv.Quote(m.Reason), m.Payload)
				}
				return nil
			})
		},
	}
	dlqList.Flags().IntVar(&limit, "limit", 0, "entries to show (default 100, max 1000)")
	dlqRequeue := seqCmd("requeue", "Move dead letters back to the queue (delivery count reset)", func(ctx context.Context, c *flo.Client, q string, seqs []uint64) error {
		return c.Queue.DLQRequeue(ctx, q, seqs, nil)
	})
	dlqDelete := &cobra.Command{
		Use:   "delete QUEUE SEQ...",
		Short: "Delete dead letters",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			seqs, err := parseQueueSeqs(args[1:])
			if err != nil {
				return err
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				n, err := c.Queue.DLQDelete(ctx, args[0], seqs, nil)
				if err != nil {
					return err
				}
				fmt.Printf("OK deleted %d\n", n)
				return nil
			})
		},
	}
	dlqPurge := &cobra.Command{
		Use:   "purge QUEUE",
		Short: "Delete every dead letter of a queue",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				n, err := c.Queue.DLQPurge(ctx, args[0], nil)
				if err != nil {
					return err
				}
				fmt.Printf("OK deleted %d\n", n)
				return nil
			})
		},
	}
	dlq.AddCommand(dlqList, dlqRequeue, dlqDelete, dlqPurge)

	cmd.AddCommand(enqueue, dequeue, ack, nack, touch, peek, stats, dlq)
	return cmd
}

func printQueueMessages(ms []flo.QueueMessage) {
	for _, m := range ms {
		fmt.Printf("%d\t%s\n", m.Seq, m.Payload)
	}
}

func parseQueueSeqs(args []string) ([]uint64, error) {
	seqs := make([]uint64, len(args))
	for i, a := range args {
		s, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad seq %q: %w", a, err)
		}
		seqs[i] = s
	}
	return seqs, nil
}
