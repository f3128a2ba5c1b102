package main

import (
	"context"
	"io"

	controlcli "github.com/meshscope/meshscope/control/cli"
	"github.com/meshscope/meshscope/query/cli"
)

// subcommandRun is how a client package runs one of its subcommands.
type subcommandRun func(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int

// runClient runs one of the terminal commands that talk to a running server.
func runClient(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return subcommand(cli.Run, name)
}

// runPolicy runs one of the policy commands (control/cli).
func runPolicy(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return subcommand(controlcli.Run, name)
}

func subcommand(run subcommandRun, name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return run(ctx, name, args, stdout, stderr)
	}
}
