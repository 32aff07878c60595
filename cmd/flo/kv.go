package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	flo "github.com/floruntime/flo/clients/go"
)

func kvCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "kv", Short: "Versioned key-value store"}
	cf := addClientFlags(cmd)

	var ttl time.Duration
	var cas uint64
	var nx, xx bool
	put := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Write a value; prints the new version",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &flo.PutOptions{TTL: ttl, IfNotExists: nx, IfExists: xx}
			if cmd.Flags().Changed("cas") {
				o.CASVersion = &cas
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				v, err := c.KV.Put(ctx, args[0], []byte(args[1]), o)
				if err != nil {
					return err
				}
				fmt.Printf("OK version %d\n", v)
				return nil
			})
		},
	}
	put.Flags().DurationVar(&ttl, "ttl", 0, "expire after this long (e.g. 30s, 1h)")
	put.Flags().Uint64Var(&cas, "cas", 0, "write only if the current version equals this (0 = key must be absent)")
	put.Flags().BoolVar(&nx, "nx", false, "write only if the key does not exist")
	put.Flags().BoolVar(&xx, "xx", false, "write only if the key exists")

	var block time.Duration
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a value (exit status 1 if absent)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				v, err := c.KV.Get(ctx, args[0], &flo.GetOptions{Block: block})
				if err != nil {
					return err
				}
				if v == nil {
					return fmt.Errorf("key %q not found", args[0])
				}
				os.Stdout.Write(v)
				fmt.Println()
				return nil
			})
		},
	}
	get.Flags().DurationVar(&block, "block", 0, "wait up to this long for the key to exist (negative = forever)")

	del := &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a key (absent keys are not an error)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				if err := c.KV.Delete(ctx, args[0], nil); err != nil {
					return err
				}
				fmt.Println("OK")
				return nil
			})
		},
	}

	var limit int
	var keysOnly, all bool
	scan := &cobra.Command{
		Use:   "scan [PREFIX]",
		Short: "List keys with a prefix, one per line (key<TAB>value)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				o := &flo.ScanOptions{Limit: limit, KeysOnly: keysOnly}
				for {
					res, err := c.KV.Scan(ctx, prefix, o)
					if err != nil {
						return err
					}
					for _, e := range res.Entries {
						if keysOnly {
							fmt.Println(e.Key)
						} else {
							fmt.Printf("%s\t%s\n", e.Key, e.Value)
						}
					}
					if !res.HasMore || !all {
						if res.HasMore {
							fmt.Fprintln(os.Stderr, "(more keys; use --all)")
						}
						return nil
					}
					o.Cursor = res.Cursor
				}
			})
		},
	}
	scan.Flags().IntVar(&limit, "limit", 0, "page size (default 100, max 1000)")
	scan.Flags().BoolVar(&keysOnly, "keys-only", false, "print keys only")
	scan.Flags().BoolVar(&all, "all", false, "follow the cursor through every page")

	var hlimit int
	history := &cobra.Command{
		Use:   "history KEY",
		Short: "Print a key's versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				vs, err := c.KV.History(ctx, args[0], &flo.HistoryOptions{Limit: hlimit})
				if err != nil {
					return err
				}
				for _, v := range vs {
					fmt.Printf("v%s\t%s\t%s\n", strconv.FormatUint(v.Version, 10), v.Timestamp.UTC().Format(time.RFC3339Nano), v.Value)
				}
				return nil
			})
		},
	}
	history.Flags().IntVar(&hlimit, "limit", 0, "number of versions (default 10, max 64)")

	cmd.AddCommand(put, get, del, scan, history)
	return cmd
}
