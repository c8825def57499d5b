package main

// Temporary root command for building the ttcb branch on its own; the real
// root lives on main and this file is dropped at merge.

import (
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "maftia", SilenceUsage: true}
	root.AddCommand(newTTCBCmd())
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
