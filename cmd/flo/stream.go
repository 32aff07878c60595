package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	flo "github.com/floruntime/flo/clients/go"
)

// streamCmd is `flo stream …`: append, read, tail [-f], info, trim and the
// consumer-group commands. Records print one per line as
// offset<TAB>timestamp<TAB>partition key (or -)<TAB>payload.
func streamCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "stream", Short: "Append-only logs and consumer groups"}
	cf := addClientFlags(cmd)
	cmd.AddCommand(streamAppendCmd(cf), streamReadCmd(cf), streamTailCmd(cf), streamInfoCmd(cf), streamTrimCmd(cf), streamGroupCmd(cf))
	return cmd
}

func streamPrintRecords(w io.Writer, rs []flo.StreamRecord) {
	for _, r := range rs {
		key := r.PartitionKey
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", r.Offset, r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"), key, r.Payload)
	}
}

// streamParseTime accepts Unix milliseconds or RFC 3339.
func streamParseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither Unix milliseconds nor RFC 3339", s)
	}
	return t, nil
}

func streamParseOffsets(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("offset %q is not a number", a)
		}
		out = append(out, v)
	}
	return out, nil
}

func streamAppendCmd(cf *clientFlags) *cobra.Command {
	var key, ts string
	c := &cobra.Command{
		Use:   "append STREAM PAYLOAD",
		Short: "Append a record (PAYLOAD - reads stdin); prints its offset and timestamp",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload := []byte(args[1])
			if args[1] == "-" {
				var err error
				if payload, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			o := &flo.StreamAppendOptions{PartitionKey: key}
			if ts != "" {
				t, err := streamParseTime(ts)
				if err != nil {
					return err
				}
				o.Timestamp = t
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				r, err := c.Stream.Append(ctx, args[0], payload, o)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "OK offset %d timestamp %d\n", r.Offset, r.Timestamp.UnixMilli())
				return nil
			})
		},
	}
	c.Flags().StringVar(&key, "key", "", "partition key stored with the record")
	c.Flags().StringVar(&ts, "timestamp", "", "record timestamp (Unix ms or RFC 3339) instead of the server clock")
	return c
}

func streamReadCmd(cf *clientFlags) *cobra.Command {
	var o flo.StreamReadOptions
	var since string
	var block time.Duration
	c := &cobra.Command{
		Use:   "read STREAM",
		Short: "Print records (from the beginning, --offset, --since or --tail)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since != "" {
				t, err := streamParseTime(since)
				if err != nil {
					return err
				}
				o.Since = t
			}
			o.Block = block
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				rs, err := c.Stream.Read(ctx, args[0], &o)
				if err != nil {
					return err
				}
				streamPrintRecords(cmd.OutOrStdout(), rs)
				return nil
			})
		},
	}
	f := c.Flags()
	f.Uint64Var(&o.Offset, "offset", 0, "first offset to read (inclusive)")
	f.StringVar(&since, "since", "", "read from the first record at or after this time (Unix ms or RFC 3339)")
	f.BoolVar(&o.Tail, "tail", false, "the newest --count records (with --block: only records appended after the call)")
	f.Uint64Var(&o.EndOffset, "end", 0, "last offset to read (inclusive)")
	f.IntVar(&o.Count, "count", 0, "most records to print (default 100, max 1000)")
	f.DurationVar(&block, "block", 0, "wait up to this long for records (negative = forever)")
	return c
}

func streamTailCmd(cf *clientFlags) *cobra.Command {
	var n int
	var follow bool
	c := &cobra.Command{
		Use:   "tail STREAM",
		Short: "Print the newest records; with -f keep printing new ones until interrupted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			out := cmd.OutOrStdout()
			var rs []flo.StreamRecord
			if n > 0 {
				if rs, err = c.Stream.Read(ctx, args[0], &flo.StreamReadOptions{Tail: true, Count: n}); err != nil {
					return err
				}
				streamPrintRecords(out, rs)
			}
			if !follow {
				return nil
			}
			var next uint64
			if len(rs) > 0 {
				next = rs[len(rs)-1].Offset + 1
			} else if info, err := c.Stream.Info(ctx, args[0], nil); err == nil {
				next = info.LastOffset + 1
			} else {
				return err
			}
			for {
				rs, err := c.Stream.Read(ctx, args[0], &flo.StreamReadOptions{Offset: next, Count: 1000, Block: 30 * time.Second})
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				streamPrintRecords(out, rs)
				if len(rs) > 0 {
					next = rs[len(rs)-1].Offset + 1
				}
			}
		},
	}
	c.Flags().IntVarP(&n, "lines", "n", 10, "how many of the newest records to print first")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing records as they are appended")
	return c
}

func streamInfoCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "info STREAM",
		Short: "Print the first and last offsets, record count and bytes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				i, err := c.Stream.Info(ctx, args[0], nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "first_offset %d\nlast_offset %d\ncount %d\nbytes %d\n", i.FirstOffset, i.LastOffset, i.Count, i.Bytes)
				return nil
			})
		},
	}
}

func streamTrimCmd(cf *clientFlags) *cobra.Command {
	var o flo.StreamTrimOptions
	c := &cobra.Command{
		Use:   "trim STREAM",
		Short: "Drop the oldest records by --max-len, --max-age, --max-bytes or --all",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.MaxLen == 0 && o.MaxAge == 0 && o.MaxBytes == 0 && !o.All {
				return fmt.Errorf("give at least one of --max-len, --max-age, --max-bytes or --all")
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				r, err := c.Stream.Trim(ctx, args[0], &o)
				if err != nil {
					return err
				}
				verb := "deleted"
				if o.DryRun {
					verb = "would delete"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %d; first offset %d\n", verb, r.Deleted, r.FirstOffset)
				return nil
			})
		},
	}
	f := c.Flags()
	f.Uint64Var(&o.MaxLen, "max-len", 0, "keep at most this many records")
	f.DurationVar(&o.MaxAge, "max-age", 0, "drop records older than this (e.g. 24h)")
	f.Uint64Var(&o.MaxBytes, "max-bytes", 0, "keep at most this many payload bytes")
	f.BoolVar(&o.All, "all", false, "drop every record")
	f.BoolVar(&o.DryRun, "dry-run", false, "report what would be dropped; change nothing")
	return c
}

func streamGroupCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Consumer groups: join, read, ack, nack, leave, dlq"}

	var ackTimeout time.Duration
	var maxDeliver int
	join := &cobra.Command{
		Use:   "join STREAM GROUP CONSUMER",
		Short: "Join a group (created at the beginning of the stream if new)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				o := &flo.StreamGroupJoinOptions{AckTimeout: ackTimeout, MaxDeliver: maxDeliver}
				if err := c.Stream.GroupJoin(ctx, args[0], args[1], args[2], o); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "OK")
				return nil
			})
		},
	}
	join.Flags().DurationVar(&ackTimeout, "ack-timeout", 0, "set the group's ack timeout (default 30s)")
	join.Flags().IntVar(&maxDeliver, "max-deliver", 0, "set the group's delivery limit (default 10)")

	var count int
	var block time.Duration
	var autoAck bool
	read := &cobra.Command{
		Use:   "read STREAM GROUP CONSUMER",
		Short: "Print records delivered to CONSUMER (ack them with `group ack` or --ack)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				rs, err := c.Stream.GroupRead(ctx, args[0], args[1], args[2], &flo.StreamGroupReadOptions{Count: count, Block: block})
				if err != nil {
					return err
				}
				streamPrintRecords(cmd.OutOrStdout(), rs)
				if !autoAck || len(rs) == 0 {
					return nil
				}
				offs := make([]uint64, len(rs))
				for i, r := range rs {
					offs[i] = r.Offset
				}
				return c.Stream.GroupAck(ctx, args[0], args[1], offs, nil)
			})
		},
	}
	read.Flags().IntVar(&count, "count", 0, "most records (default 10, max 1000)")
	read.Flags().DurationVar(&block, "block", 0, "wait up to this long for records (negative = forever)")
	read.Flags().BoolVar(&autoAck, "ack", false, "acknowledge the records once printed")

	offsetsCmd := func(use, short string, call func(ctx context.Context, c *flo.Client, stream, group string, offs []uint64) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " STREAM GROUP OFFSET...",
			Short: short,
			Args:  cobra.MinimumNArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				offs, err := streamParseOffsets(args[2:])
				if err != nil {
					return err
				}
				return cf.run(func(ctx context.Context, c *flo.Client) error {
					if err := call(ctx, c, args[0], args[1], offs); err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), "OK")
					return nil
				})
			},
		}
	}
	ack := offsetsCmd("ack", "Acknowledge records (unknown offsets are ignored)", func(ctx context.Context, c *flo.Client, s, g string, o []uint64) error {
		return c.Stream.GroupAck(ctx, s, g, o, nil)
	})
	nack := offsetsCmd("nack", "Hand delivered records back for immediate redelivery", func(ctx context.Context, c *flo.Client, s, g string, o []uint64) error {
		return c.Stream.GroupNack(ctx, s, g, o, nil)
	})
	touch := offsetsCmd("touch", "Restart the ack timeout of delivered records", func(ctx context.Context, c *flo.Client, s, g string, o []uint64) error {
		return c.Stream.GroupTouch(ctx, s, g, o, nil)
	})

	leave := &cobra.Command{
		Use:   "leave STREAM GROUP CONSUMER",
		Short: "Leave a group; the consumer's records go to the others at once",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				if err := c.Stream.GroupLeave(ctx, args[0], args[1], args[2], nil); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "OK")
				return nil
			})
		},
	}

	dlq := &cobra.Command{Use: "dlq", Short: "A group's dead-letter list: list, requeue"}
	var limit int
	list := &cobra.Command{
		Use:   "list STREAM GROUP",
		Short: "Print dead-lettered records: offset, timestamp, key, deliveries, last consumer, payload",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				ds, err := c.Stream.GroupDLQList(ctx, args[0], args[1], &flo.StreamDLQOptions{Limit: limit})
				if err != nil {
					return err
				}
				for _, d := range ds {
					key := d.PartitionKey
					if key == "" {
						key = "-"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%d\t%s\t%s\t%d\t%s\t%s\n", d.Offset,
						d.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"), key, d.Deliveries, d.Consumer, d.Payload)
				}
				return nil
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "most entries (default 100, max 1000)")
	requeue := offsetsCmd("requeue", "Send dead-lettered records back to the group", func(ctx context.Context, c *flo.Client, s, g string, o []uint64) error {
		return c.Stream.GroupDLQRequeue(ctx, s, g, o, nil)
	})
	dlq.AddCommand(list, requeue)

	cmd.AddCommand(join, read, ack, nack, touch, leave, dlq)
	return cmd
}
