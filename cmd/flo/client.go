package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	flo "github.com/floruntime/flo/clients/go"
)

// clientFlags are the connection flags every client command shares.
type clientFlags struct {
	server    string
	namespace string
	timeout   time.Duration
}

// addClientFlags registers --server, --namespace and --timeout on cmd and
// its children.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	server := os.Getenv("FLO_SERVER")
	if server == "" {
		server = flo.DefaultAddr
	}
	ns := os.Getenv("FLO_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&cf.server, "server", server, "server address (env FLO_SERVER)")
	pf.StringVar(&cf.namespace, "namespace", ns, "namespace (env FLO_NAMESPACE)")
	pf.DurationVar(&cf.timeout, "timeout", 5*time.Second, "timeout of each call")
	return cf
}

// dial connects with the shared flags.
func (cf *clientFlags) dial(ctx context.Context) (*flo.Client, error) {
	return flo.Dial(ctx, cf.server, flo.Options{Namespace: cf.namespace, Timeout: cf.timeout})
}

// run connects, runs fn and closes the client.
func (cf *clientFlags) run(fn func(ctx context.Context, c *flo.Client) error) error {
	ctx := context.Background()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}
