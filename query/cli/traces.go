package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshscope/meshscope/query/meshapi"
)

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func runTraces(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "get" {
		return runTraceGet(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("traces", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	service := fs.String("service", "", "only traces with a span of this service")
	operation := fs.String("operation", "", "only traces with a span of this operation (span name)")
	var attrs repeated
	fs.Var(&attrs, "attr", "attribute filter key=value (repeatable; all must hold on one span)")
	status := fs.String("status", "", "error or ok: only spans with that status")
	minDur := fs.String("min-duration", "", "shortest matching span (e.g. 250ms)")
	maxDur := fs.String("max-duration", "", "longest matching span (e.g. 2s)")
	lookback := fs.String("lookback", "1h", "search the spans started this long ago until now")
	limit := fs.Int("limit", 20, "most traces shown")
	out := outputFlag(fs, "table", "json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope traces [--service S] [--operation O] [--attr k=v]... [--status error|ok] [--min-duration D] [--max-duration D] [--lookback 1h] [--limit 20] [-o table|json]")
		fmt.Fprintln(stderr, "       meshscope traces get TRACE_ID [-o waterfall|json] [--width 60]")
		fs.PrintDefaults()
	}
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "traces", "unexpected arguments %q (did you mean `traces get ID`?)", fs.Args())
	}
	if err := checkFormat(*out, "table", "json"); err != nil {
		return usageError(stderr, "traces", "%v", err)
	}
	if *limit <= 0 {
		return usageError(stderr, "traces", "--limit %d: must be positive", *limit)
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "traces", "%v", err)
	}
	q := url.Values{"lookback": {*lookback}, "limit": {fmt.Sprint(*limit)}}
	for k, v := range map[string]string{"service": *service, "operation": *operation, "status": *status, "min_duration": *minDur, "max_duration": *maxDur} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, a := range attrs {
		q.Add("attr", a)
	}
	var resp meshapi.TracesResponse
	if _, err := c.get(ctx, "/api/mesh/traces", q, &resp); err != nil {
		return failure(stderr, "traces", err)
	}
	if *out == "json" {
		return jsonOut(stdout, stderr, resp)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "TRACE_ID\tSTART\tDURATION\tSPANS\tERRORS\tROOT\tSERVICES")
	for _, t := range resp.Traces {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s: %s\t%s\n", t.TraceID, t.Start.Format(time.RFC3339Nano), fmtMs(t.DurationMs), t.SpanCount, t.ErrorCount,
			t.RootService, t.RootOperation, strings.Join(t.Services, ","))
	}
	if err := tw.Flush(); err != nil {
		return failure(stderr, "traces", err)
	}
	if len(resp.Traces) == 0 {
		fmt.Fprintln(stderr, "no traces match")
	}
	return ExitOK
}

func runTraceGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("traces get", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	out := outputFlag(fs, "waterfall", "json")
	width := fs.Int("width", 60, "width of the waterfall's timeline in columns")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope traces get TRACE_ID [-o waterfall|json] [--width 60] [--server URL]")
		fs.PrintDefaults()
	}
	pos, err := argsAndFlags(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) != 1 {
		return usageError(stderr, "traces get", "want exactly one trace id, got %d arguments", len(pos))
	}
	if err := checkFormat(*out, "waterfall", "json"); err != nil {
		return usageError(stderr, "traces get", "%v", err)
	}
	if *width < 10 || *width > 400 {
		return usageError(stderr, "traces get", "--width %d: want 10 to 400", *width)
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "traces get", "%v", err)
	}
	var t meshapi.Trace
	if _, err := c.get(ctx, "/api/mesh/traces/"+url.PathEscape(pos[0]), nil, &t); err != nil {
		return failure(stderr, "traces get", err)
	}
	if *out == "json" {
		return jsonOut(stdout, stderr, t)
	}
	Waterfall(stdout, t, *width)
	return ExitOK
}

// Waterfall prints a trace as a terminal timeline: one line per span in
// tree order, indented by depth, with its offset, duration and a bar placed
// on a timeline of width columns. Error spans are marked with "!".
func Waterfall(w io.Writer, t meshapi.Trace, width int) {
	total := float64(t.DurationMs)
	fmt.Fprintf(w, "Trace %s  %s  %d spans  %d errors  services: %s\n", t.TraceID, fmtMs(t.DurationMs), t.SpanCount, t.ErrorCount, strings.Join(t.Services, ", "))
	fmt.Fprintf(w, "Started %s, root %s: %s\n\n", t.Start.Format(time.RFC3339Nano), t.RootService, t.RootOperation)
	const nameWidth = 44
	fmt.Fprintf(w, "%-*s %9s %9s  %s\n", nameWidth, "SPAN", "OFFSET", "DURATION", "0"+strings.Repeat(" ", max(0, width-1-len(fmtMs(t.DurationMs))))+fmtMs(t.DurationMs))
	for _, s := range t.Spans {
		mark := " "
		if s.Status == "error" {
			mark = "!"
		}
		label := strings.Repeat("  ", min(s.Depth, 10)) + s.Service + ": " + s.Name
		label = truncate(label, nameWidth-2)
		bar := timelineBar(float64(s.StartOffsetMs), float64(s.DurationMs), total, width)
		fmt.Fprintf(w, "%s %-*s %9s %9s  %s\n", mark, nameWidth-2, label, fmtMs(s.StartOffsetMs), fmtMs(s.DurationMs), bar)
	}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func timelineBar(offset, dur, total float64, width int) string {
	if !(total > 0) || math.IsNaN(offset) || math.IsNaN(dur) {
		return strings.Repeat("█", width)
	}
	start := int(math.Floor(offset / total * float64(width)))
	length := int(math.Round(dur / total * float64(width)))
	start = min(max(start, 0), width-1)
	length = min(max(length, 1), width-start)
	return strings.Repeat("·", start) + strings.Repeat("█", length) + strings.Repeat("·", width-start-length)
}
