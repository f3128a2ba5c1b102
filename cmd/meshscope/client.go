package main

import (
	"context"
	"io"

	"github.com/meshscope/meshscope/query/cli"
)

// runClient runs one of the terminal commands that talk to a running server.
func runClient(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return cli.Run(ctx, name, args, stdout, stderr)
	}
}
