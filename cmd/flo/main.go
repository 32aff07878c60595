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
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "flo:", err)
		os.Exit(1)
	}
}

// clientCommands builds the client subcommands (kv, queue, stream, …); each
// primitive's file appends its own.
var clientCommands = []func() *cobra.Command{kvCmd, streamCmd, queueCmd, benchCmd, actionCmd, workerCmd}
