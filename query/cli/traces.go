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

// searchFlags are the flags of `traces` (search).
type searchFlags struct {
	common                                     commonFlags
	service, operation, status, minDur, maxDur *string
	lookback                                   *string
	limit                                      *int
	attrs                                      repeated
	out                                        *string
	utc                                        *bool
}

func newSearchFlags(stderr io.Writer) (*flag.FlagSet, *searchFlags) {
	fs := flag.NewFlagSet("traces", flag.ContinueOnError)
	f := &searchFlags{}
	f.common.register(fs)
	f.service = fs.String("service", "", "only traces with a span of this service")
	f.operation = fs.String("operation", "", "only traces with a span of this operation (span name)")
	fs.Var(&f.attrs, "attr", "attribute filter key=value (repeatable; all must hold on one span)")
	f.status = fs.String("status", "", "error or ok: only spans with that status")
	f.minDur = fs.String("min-duration", "", "shortest matching span (e.g. 250ms)")
	f.maxDur = fs.String("max-duration", "", "longest matching span (e.g. 2s)")
	f.lookback = fs.String("lookback", "1h", "search the spans started this long ago until now")
	f.limit = fs.Int("limit", 20, "most traces shown")
	f.out = outputFlag(fs, "table", "json")
	f.utc = utcFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope traces [--service S] [--operation O] [--attr k=v]... [--status error|ok] [--min-duration D] [--max-duration D] [--lookback 1h] [--limit 20] [-o table|json] [--utc]")
		fmt.Fprintln(stderr, "       meshscope traces get TRACE_ID [-o waterfall|json] [--width 60] [--utc]")
		fs.PrintDefaults()
	}
	return fs, f
}

// getFlags are the flags of `traces get`.
type getFlags struct {
	common commonFlags
	out    *string
	width  *int
	utc    *bool
}

func newGetFlags(stderr io.Writer) (*flag.FlagSet, *getFlags) {
	fs := flag.NewFlagSet("traces get", flag.ContinueOnError)
	f := &getFlags{}
	f.common.register(fs)
	f.out = outputFlag(fs, "waterfall", "json")
	f.width = fs.Int("width", 60, "width of the waterfall's timeline in columns")
	f.utc = utcFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope traces get TRACE_ID [-o waterfall|json] [--width 60] [--utc] [--server URL]")
		fs.PrintDefaults()
	}
	return fs, f
}

func utcFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("utc", false, "print times in UTC instead of local time")
}

// TimeLayout is how the CLI prints a point in time: millisecond precision
// and the zone's name.
const TimeLayout = "2006-01-02 15:04:05.000 MST"

// FormatTime prints t in loc with TimeLayout.
func FormatTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(TimeLayout)
}

func location(utc bool) *time.Location {
	if utc {
		return time.UTC
	}
	return time.Local
}

func runTraces(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newSearchFlags(stderr)
	// `get` may stand after flags (`traces --server URL get ID`).
	getFS, _ := newGetFlags(io.Discard)
	if i := firstPositional(args, fs, getFS); i >= 0 && args[i] == "get" {
		rest := append(append([]string{}, args[:i]...), args[i+1:]...)
		return runTraceGet(ctx, rest, stdout, stderr)
	}
	pos, code, ok := parse(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "traces", "unexpected arguments %q (did you mean `traces get ID`?)", pos)
	}
	if err := checkFormat(*f.out, "table", "json"); err != nil {
		return usageError(stderr, "traces", "%v", err)
	}
	if *f.limit <= 0 {
		return usageError(stderr, "traces", "--limit %d: must be positive", *f.limit)
	}
	c, err := f.common.client()
	if err != nil {
		return usageError(stderr, "traces", "%v", err)
	}
	q := url.Values{"lookback": {*f.lookback}, "limit": {fmt.Sprint(*f.limit)}}
	for k, v := range map[string]string{"service": *f.service, "operation": *f.operation, "status": *f.status, "min_duration": *f.minDur, "max_duration": *f.maxDur} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, a := range f.attrs {
		q.Add("attr", a)
	}
	var resp meshapi.TracesResponse
	if _, err := c.get(ctx, "/api/mesh/traces", q, &resp); err != nil {
		return failure(stderr, "traces", err)
	}
	if *f.out == "json" {
		return jsonOut(stdout, stderr, resp)
	}
	loc := location(*f.utc)
	tw := newTable(stdout)
	fmt.Fprintln(tw, "TRACE_ID\tSTART\tDURATION\tSPANS\tERRORS\tROOT\tSERVICES")
	for _, t := range resp.Traces {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s: %s\t%s\n", t.TraceID, FormatTime(t.Start, loc), fmtMs(t.DurationMs), t.SpanCount, t.ErrorCount,
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
	fs, f := newGetFlags(stderr)
	pos, code, ok := parse(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "traces get", "want exactly one trace id, got %d arguments", len(pos))
	}
	if err := checkFormat(*f.out, "waterfall", "json"); err != nil {
		return usageError(stderr, "traces get", "%v", err)
	}
	if *f.width < 10 || *f.width > 400 {
		return usageError(stderr, "traces get", "--width %d: want 10 to 400", *f.width)
	}
	c, err := f.common.client()
	if err != nil {
		return usageError(stderr, "traces get", "%v", err)
	}
	var t meshapi.Trace
	if _, err := c.get(ctx, "/api/mesh/traces/"+url.PathEscape(pos[0]), nil, &t); err != nil {
		return failure(stderr, "traces get", err)
	}
	if *f.out == "json" {
		return jsonOut(stdout, stderr, t)
	}
	Waterfall(stdout, t, *f.width, location(*f.utc))
	return ExitOK
}

// Waterfall prints a trace as a terminal timeline: one line per span in
// tree order, indented by depth, with its offset, duration and a bar placed
// on a timeline of width columns. Error spans are marked with "!". The
// start time is printed in loc.
func Waterfall(w io.Writer, t meshapi.Trace, width int, loc *time.Location) {
	total := float64(t.DurationMs)
	fmt.Fprintf(w, "Trace %s  %s  %d spans  %d errors  services: %s\n", t.TraceID, fmtMs(t.DurationMs), t.SpanCount, t.ErrorCount, strings.Join(t.Services, ", "))
	fmt.Fprintf(w, "Started %s, root %s: %s\n\n", FormatTime(t.Start, loc), t.RootService, t.RootOperation)
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
