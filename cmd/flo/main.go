// Command flo is the flo server and its command-line client.
//
//	flo server start [--listen :9000] [--data-dir flo-data] [--durability sync|interval]
//	flo kv put|get|delete|scan|history …
//
// Every client command takes --server (env FLO_SERVER, default
// localhost:9000) and --namespace (env FLO_NAMESPACE).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "flo",
		Short:         "flo: durable KV, queues, streams, actions and workers in one server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCmd())
	for _, add := range clientCommands {
		root.AddCommand(add())
	}
	for _, c := range root.Commands() {
		requireSubcommand(c)
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "flo:", err)
		os.Exit(1)
	}
}

// clientCommands builds the client subcommands (kv, queue, stream, …); each
// primitive's file appends its own.
var clientCommands = []func() *cobra.Command{kvCmd, streamCmd, queueCmd, benchCmd, actionCmd, workerCmd}

// requireSubcommand makes cmd and every command group under it refuse a word
// that names none of its subcommands. Cobra checks this for the root only: a
// group such as `kv` given `gett` printed its help and exited 0 as if the
// command had run. A group given nothing still prints its help.
func requireSubcommand(cmd *cobra.Command) {
	if !cmd.HasSubCommands() {
		return
	}
	if !cmd.Runnable() {
		cmd.Args = cobra.NoArgs
		cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, c := range cmd.Commands() {
		requireSubcommand(c)
	}
}
