package main

import (
	"context"
	"io"
	"os"

	"github.com/meshscope/meshscope/deploy/inject"
)

// runInject is `meshscope inject` (deploy/inject); it reads stdin.
func runInject(_ context.Context, args []string, stdout, stderr io.Writer) int {
	return inject.Run(args, os.Stdin, stdout, stderr)
}
