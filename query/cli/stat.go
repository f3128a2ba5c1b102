package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/meshscope/meshscope/query/meshapi"
)

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 3, ' ', 0) }

func isNum(n meshapi.Number) bool {
	f := float64(n)
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}

func fmtPercent(n meshapi.Number) string {
	if !isNum(n) {
		return "-"
	}
	return strconv.FormatFloat(float64(n)*100, 'f', 2, 64) + "%"
}

func fmtRPS(n meshapi.Number) string {
	if !isNum(n) {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 1, 64) + "rps"
}

func fmtMs(n meshapi.Number) string {
	if !isNum(n) {
		return "-"
	}
	f := float64(n)
	switch {
	case f >= 1000:
		return strconv.FormatFloat(f/1000, 'f', 2, 64) + "s"
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 0, 64) + "ms"
	default:
		return strconv.FormatFloat(f, 'f', 1, 64) + "ms"
	}
}

func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	window := fs.String("window", "1m", "window the rates and latencies are computed over (Prometheus duration)")
	edges := fs.Bool("edges", false, "one row per caller→callee edge instead of per service")
	versions := fs.Bool("versions", false, "one row per service version")
	service := fs.String("service", "", "only this service (the destination, with --edges)")
	from := fs.String("from", "", "with --edges: only edges from this service")
	out := outputFlag(fs, "table", "json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope stat [--edges|--versions] [--service NAME] [--window 1m] [-o table|json] [--server URL]")
		fs.PrintDefaults()
	}
	pos, code, ok := parse(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) == 1 && *service == "" {
		*service = pos[0]
	} else if len(pos) > 0 {
		return usageError(stderr, "stat", "unexpected arguments %q", pos)
	}
	if err := checkFormat(*out, "table", "json"); err != nil {
		return usageError(stderr, "stat", "%v", err)
	}
	if *edges && *versions {
		return usageError(stderr, "stat", "--edges and --versions exclude each other")
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "stat", "%v", err)
	}
	q := url.Values{"window": {*window}}
	switch {
	case *edges:
		if *service != "" {
			q.Set("destination", *service)
		}
		if *from != "" {
			q.Set("source", *from)
		}
		var resp meshapi.EdgesResponse
		if _, err := c.get(ctx, "/api/mesh/edges", q, &resp); err != nil {
			return failure(stderr, "stat", err)
		}
		if len(resp.Edges) == 0 {
			if code, unknown := c.unknownServices(ctx, stderr, *service, *from); unknown {
				return code
			}
		}
		if *out == "json" {
			return jsonOut(stdout, stderr, resp)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "SRC\tDST\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99\tSEEN_BY")
		for _, e := range resp.Edges {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Source, e.Destination, fmtPercent(e.SuccessRate), fmtRPS(e.RPS), fmtMs(e.P50Ms), fmtMs(e.P95Ms), fmtMs(e.P99Ms), e.SeenBy)
		}
		return flushTable(tw, stderr, len(resp.Edges))
	case *versions:
		if *service != "" {
			q.Set("service", *service)
		}
		var resp meshapi.VersionsResponse
		if _, err := c.get(ctx, "/api/mesh/versions", q, &resp); err != nil {
			return failure(stderr, "stat", err)
		}
		if len(resp.Versions) == 0 {
			if code, unknown := c.unknownServices(ctx, stderr, *service); unknown {
				return code
			}
		}
		if *out == "json" {
			return jsonOut(stdout, stderr, resp)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "NAME\tVERSION\tMODE\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99")
		for _, v := range resp.Versions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Service, v.Version, v.Mode, fmtPercent(v.SuccessRate), fmtRPS(v.RPS), fmtMs(v.P50Ms), fmtMs(v.P95Ms), fmtMs(v.P99Ms))
		}
		return flushTable(tw, stderr, len(resp.Versions))
	default:
		if *service != "" {
			q.Set("service", *service)
		}
		var resp meshapi.ServicesResponse
		if _, err := c.get(ctx, "/api/mesh/services", q, &resp); err != nil {
			return failure(stderr, "stat", err)
		}
		if len(resp.Services) == 0 {
			if code, unknown := c.unknownServices(ctx, stderr, *service); unknown {
				return code
			}
		}
		if *out == "json" {
			return jsonOut(stdout, stderr, resp)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "NAME\tMESHED\tMODE\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99")
		for _, s := range resp.Services {
			meshed := "no"
			if s.Meshed {
				meshed = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, meshed, s.Mode, fmtPercent(s.SuccessRate), fmtRPS(s.RPS), fmtMs(s.P50Ms), fmtMs(s.P95Ms), fmtMs(s.P99Ms))
		}
		return flushTable(tw, stderr, len(resp.Services))
	}
}

func jsonOut(stdout, stderr io.Writer, v any) int {
	if err := writeJSON(stdout, v); err != nil {
		return failure(stderr, "output", err)
	}
	return ExitOK
}

func flushTable(tw *tabwriter.Writer, stderr io.Writer, rows int) int {
	if err := tw.Flush(); err != nil {
		return failure(stderr, "output", err)
	}
	if rows == 0 {
		fmt.Fprintln(stderr, "no traffic in the window")
	}
	return ExitOK
}

// busiest sorts routes by rps, busiest first.
func busiest(rows []meshapi.RouteRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		ri, rj := float64(rows[i].RPS), float64(rows[j].RPS)
		if ri != rj {
			return ri > rj
		}
		if rows[i].Service != rows[j].Service {
			return rows[i].Service < rows[j].Service
		}
		return rows[i].Route < rows[j].Route
	})
}

// knownServices lists every service name the server's TSDB holds, over its
// whole retention: callers and callees of mesh_requests_total and the
// services of reporting proxies.
func (c *client) knownServices(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, l := range []struct{ label, match string }{
		{"destination_service", "mesh_requests_total"},
		{"source_service", "mesh_requests_total"},
		{"service", "meshscope_proxy_info"},
	} {
		var resp struct {
			Data []string `json:"data"`
		}
		if _, err := c.get(ctx, "/api/v1/label/"+l.label+"/values", url.Values{"match[]": {l.match}}, &resp); err != nil {
			return nil, err
		}
		for _, v := range resp.Data {
			set[v] = true
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out, nil
}

// unknownServices checks the service names a command filtered by (empty
// ones are skipped) when it found nothing: a name the server has never seen
// is an error naming the known services (exit 1), so that a typo does not
// look like an idle service.
func (c *client) unknownServices(ctx context.Context, stderr io.Writer, names ...string) (code int, unknown bool) {
	var asked []string
	for _, n := range names {
		if n != "" {
			asked = append(asked, n)
		}
	}
	if len(asked) == 0 {
		return ExitOK, false
	}
	known, err := c.knownServices(ctx)
	if err != nil {
		return failure(stderr, "stat", fmt.Errorf("listing known services: %w", err)), true
	}
	for _, n := range asked {
		if slices.Contains(known, n) {
			continue
		}
		if len(known) == 0 {
			return failure(stderr, "stat", fmt.Errorf("unknown service %q: the server knows no services yet (no mesh traffic or proxy report stored)", n)), true
		}
		return failure(stderr, "stat", fmt.Errorf("unknown service %q; known services: %s", n, strings.Join(known, ", "))), true
	}
	return ExitOK, false
}
