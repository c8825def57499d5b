// Command maftia is the single binary of the maftia intrusion-tolerant
// middleware: simulation, key generation, replicas, the TTCB, clients,
// the demo and benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "maftia:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "maftia",
		Short: "maftia: intrusion-tolerant middleware (MAFTIA architecture)",
		Long: `maftia replicates a deterministic service on n servers so that it stays
correct, available and confidential while up to f of them are Byzantine.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands lists the constructors of every subcommand; each lives in its
// own file.
var subcommands = []func() *cobra.Command{
	newSimCmd,
	newKeygenCmd,
	newNodeCmd,
	newTTCBCmd,
	newKVCmd,
	newVerifyReplyCmd,
	newDemoCmd,
	newUpCmd,
	newBenchCmd,
}
