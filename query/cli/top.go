package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/meshscope/meshscope/query/meshapi"
)

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	window := fs.String("window", "1m", "window the rates and latencies are computed over (Prometheus duration)")
	service := fs.String("service", "", "only routes of this service")
	limit := fs.Int("limit", 20, "number of routes shown")
	interval := fs.Duration("interval", 2*time.Second, "refresh interval")
	once := fs.Bool("once", false, "print one frame and exit (non-interactive)")
	utc := utcFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope top [--service NAME] [--window 1m] [--limit 20] [--interval 2s] [--once] [--utc] [--server URL]")
		fs.PrintDefaults()
	}
	pos, code, ok := parse(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "top", "unexpected arguments %q", pos)
	}
	if *limit <= 0 {
		return usageError(stderr, "top", "--limit %d: must be positive", *limit)
	}
	if *interval < 500*time.Millisecond {
		return usageError(stderr, "top", "--interval %s: must be at least 500ms", *interval)
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "top", "%v", err)
	}
	q := url.Values{"window": {*window}}
	if *service != "" {
		q.Set("service", *service)
	}
	frame := func() error {
		var resp meshapi.RoutesResponse
		if _, err := c.get(ctx, "/api/mesh/routes", q, &resp); err != nil {
			return err
		}
		rows := resp.Routes
		busiest(rows)
		if len(rows) > *limit {
			rows = rows[:*limit]
		}
		fmt.Fprintf(stdout, "busiest routes over %s at %s (%d of %d)\n\n", resp.Window, FormatTime(resp.At, location(*utc)), len(rows), len(resp.Routes))
		tw := newTable(stdout)
		fmt.Fprintln(tw, "SERVICE\tROUTE\tRPS\tSUCCESS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Service, r.Route, fmtRPS(r.RPS), fmtPercent(r.SuccessRate), fmtMs(r.P50Ms), fmtMs(r.P95Ms), fmtMs(r.P99Ms))
		}
		return tw.Flush()
	}
	if *once {
		if err := frame(); err != nil {
			return failure(stderr, "top", err)
		}
		return ExitOK
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		fmt.Fprint(stdout, clearScreen)
		if err := frame(); err != nil {
			if ctx.Err() != nil {
				return ExitOK
			}
			fmt.Fprintf(stdout, "meshscope top: %v (retrying every %s)\n", err, *interval)
		}
		select {
		case <-ctx.Done():
			return ExitOK
		case <-tick.C:
		}
	}
}
