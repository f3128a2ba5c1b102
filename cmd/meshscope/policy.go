package main

import (
	"context"
	"io"

	"github.com/meshscope/meshscope/control/cli"
)

// runPolicy runs one of the policy commands that talk to a running server.
func runPolicy(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return cli.Run(ctx, name, args, stdout, stderr)
	}
}
