package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	flo "github.com/floruntime/flo/clients/go"
)

func actionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "action", Short: "Register, invoke and inspect actions (tasks run by workers)"}
	cf := addClientFlags(cmd)

	var timeout time.Duration
	var retries int
	var desc string
	register := &cobra.Command{
		Use:   "register NAME",
		Short: "Create an action or replace its settings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &flo.ActionRegisterOptions{Timeout: timeout, MaxRetries: &retries, Description: desc}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				if err := c.Action.Register(ctx, args[0], o); err != nil {
					return err
				}
				fmt.Println("OK")
				return nil
			})
		},
	}
	register.Flags().DurationVar(&timeout, "task-timeout", 30*time.Second, "the action's timeout: the lease a worker gets on each attempt")
	register.Flags().IntVar(&retries, "max-retries", 3, "retries after the first attempt")
	register.Flags().StringVar(&desc, "description", "", "free-text description")

	var priority uint8
	var idem string
	var delay time.Duration
	var wait bool
	var waitFor time.Duration
	invoke := &cobra.Command{
		Use:   "invoke NAME [INPUT|-]",
		Short: "Invoke an action; prints the run ID (with --wait, the result)",
		Long: "Invoke an action with INPUT (or standard input with -; empty if omitted) and print the run ID.\n" +
			"With --wait, wait for the run to end and print its result; a run that fails or times out\n" +
			"prints its error and exits with status 1.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var input []byte
			if len(args) == 2 {
				if args[1] == "-" {
					b, err := io.ReadAll(os.Stdin)
					if err != nil {
						return err
					}
					input = b
				} else {
					input = []byte(args[1])
				}
			}
			o := flo.ActionInvokeOptions{Priority: &priority, IdempotencyKey: idem, Delay: delay}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				if !wait {
					id, err := c.Action.Invoke(ctx, args[0], input, &o)
					if err != nil {
						return err
					}
					fmt.Println(id)
					return nil
				}
				if waitFor > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, waitFor)
					defer cancel()
				}
				st, err := c.Action.InvokeAndWait(ctx, args[0], input, &flo.ActionWaitOptions{ActionInvokeOptions: o})
				var re *flo.RunError
				if errors.As(err, &re) {
					return fmt.Errorf("run %s %s after %d attempt(s): %s", re.RunID, re.State, st.Attempt, re.Message)
				}
				if err != nil {
					return err
				}
				os.Stdout.Write(st.Result)
				if len(st.Result) > 0 && st.Result[len(st.Result)-1] != '\n' {
					fmt.Println()
				}
				return nil
			})
		},
	}
	invoke.Flags().Uint8Var(&priority, "priority", 10, "0-255, higher runs first")
	invoke.Flags().StringVar(&idem, "idempotency-key", "", "repeat invokes with this key return the first run")
	invoke.Flags().DurationVar(&delay, "delay", 0, "do not start the run before this much time has passed")
	invoke.Flags().BoolVar(&wait, "wait", false, "wait for the run to end and print its result")
	invoke.Flags().DurationVar(&waitFor, "wait-timeout", 0, "with --wait, give up after this long (0 = no limit)")

	var statusWait bool
	var statusWaitFor time.Duration
	status := &cobra.Command{
		Use:   "status RUN_ID",
		Short: "Print a run's state, attempts, timestamps, result or error",
		Long: "Print a run's state, attempts, timestamps, result or error.\n\n" +
			"With --wait, the server answers once the run has ended (or --wait-timeout has passed,\n" +
			"printing the run as it is then).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &flo.ActionStatusOptions{}
			if statusWait {
				o.Block = flo.Forever
				if statusWaitFor > 0 {
					o.Block = statusWaitFor
				}
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				st, err := c.Action.Status(ctx, args[0], o)
				if err != nil {
					return err
				}
				printRunStatus(os.Stdout, st)
				return nil
			})
		},
	}

	status.Flags().BoolVar(&statusWait, "wait", false, "wait for the run to end")
	status.Flags().DurationVar(&statusWaitFor, "wait-timeout", 0, "with --wait, answer after this long even if the run has not ended (0 = no limit)")

	var limit int
	var all bool
	list := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List actions (name, timeout, max retries, version, description)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &flo.ActionListOptions{Limit: limit}
			if len(args) == 1 {
				o.Prefix = args[0]
			}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tTIMEOUT\tMAX RETRIES\tVERSION\tDESCRIPTION")
				for {
					l, err := c.Action.List(ctx, o)
					if err != nil {
						return err
					}
					for _, a := range l.Actions {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", a.Name, a.Timeout, a.MaxRetries, a.Version, a.Description)
					}
					if !l.HasMore || !all {
						tw.Flush()
						if l.HasMore {
							fmt.Fprintln(os.Stderr, "(more actions; use --all)")
						}
						return nil
					}
					o.Cursor = l.Cursor
				}
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "page size (default 100, max 1000)")
	list.Flags().BoolVar(&all, "all", false, "follow the cursor through every page")

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an action (runs already invoked are not affected)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				if err := c.Action.Delete(ctx, args[0], nil); err != nil {
					return err
				}
				fmt.Println("OK")
				return nil
			})
		},
	}

	cmd.AddCommand(register, invoke, status, list, del)
	return cmd
}

// printRunStatus prints a run as "field: value" lines.
func printRunStatus(w io.Writer, st *flo.RunStatus) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "run:       %s\nstatus:    %s\nattempt:   %d\ncreated:   %s\nstarted:   %s\ncompleted: %s\n",
		st.RunID, st.State, st.Attempt, ts(st.CreatedAt), ts(st.StartedAt), ts(st.CompletedAt))
	if st.Error != "" {
		fmt.Fprintf(w, "error:     %s\n", st.Error)
	}
	if st.State == flo.RunCompleted {
		fmt.Fprintf(w, "result:    %s\n", st.Result)
	}
}

func workerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "worker", Short: "Inspect workers"}
	cf := addClientFlags(cmd)

	var limit int
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List workers (id, status, task types, tasks in flight, last seen)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &flo.WorkerListOptions{Limit: limit}
			return cf.run(func(ctx context.Context, c *flo.Client) error {
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tIN FLIGHT\tCOMPLETED\tFAILED\tLAST SEEN\tTASK TYPES")
				for {
					l, err := c.Worker.List(ctx, o)
					if err != nil {
						return err
					}
					for _, w := range l.Workers {
						types := make([]string, len(w.TaskTypes))
						for i, t := range w.TaskTypes {
							types[i] = t.Name
						}
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", w.ID, w.Status, w.InFlight, w.Completed, w.Failed,
							w.LastSeen.UTC().Format(time.RFC3339), strings.Join(types, ","))
					}
					if !l.HasMore || !all {
						tw.Flush()
						if l.HasMore {
							fmt.Fprintln(os.Stderr, "(more workers; use --all)")
						}
						return nil
					}
					o.Cursor = l.Cursor
				}
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "page size (default 100, max 1000)")
	list.Flags().BoolVar(&all, "all", false, "follow the cursor through every page")
	cmd.AddCommand(list)
	return cmd
}
