package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/meshscope/meshscope/cmd/internal/flagconfig"
	"github.com/meshscope/meshscope/demo"
)

func bindDemoFlags(fs *flag.FlagSet, c *demo.Config) {
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "server `addr`ess of the UI and APIs (port 0 picks a free one)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data `dir`ectory of the demo server; child logs go to DIR/logs")
	fs.StringVar(&c.ServerBinary, "server-binary", c.ServerBinary, "meshscope `binary` to run as the server (default: this one)")
	fs.StringVar(&c.ProxyBinary, "proxy-binary", c.ProxyBinary, "meshscope-proxy `binary` (default: next to this one, then $PATH)")
	fs.StringVar(&c.ServerConfig, "server-config", c.ServerConfig, "YAML `file` passed to the server as --config")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "load in requests per second (negative: no load)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "stop after this long once up (0: until Ctrl-C)")
	fs.StringVar(&c.Scenario, "scenario", c.Scenario, "roll inventory v2 out: canary (healthy, promoted) or bad-canary (fails 5 %, rolled back)")
	fs.BoolVar(&c.NoAuth, "no-auth", c.NoAuth, "run the server without an auth file (default: a generated admin token, printed at start)")
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := flagconfig.Parse("meshscope demo", args, func() demo.Config { return demo.Config{}.WithDefaults() }, bindDemoFlags, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshscope demo: %v\n", err)
		return 2
	}
	logger, _ := newLogger(stderr, "info")
	if err := demo.Run(ctx, cfg, stdout, logger); err != nil {
		fmt.Fprintf(stderr, "meshscope demo: %v\n", err)
		return 1
	}
	return 0
}
