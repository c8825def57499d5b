// Temporary root command so that keygen builds and is tested on the crypto
// branch; the real root command lives on main. Drop this file at merge.
package main

import (
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "maftia", SilenceUsage: true}
	root.AddCommand(newKeygenCmd())
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
