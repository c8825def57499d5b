package main

// Temporary: registers `maftia node` with the root command until the
// integrator adds newNodeCmd to subcommands in main.go; drop on merge.

func init() { subcommands = append(subcommands, newNodeCmd) }
