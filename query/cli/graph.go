package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/topology"
)

func runGraph(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("graph", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	window := fs.String("window", "", "graph window (e.g. 1m; default: the server's)")
	view := fs.String("view", "", "service or version (default: the server's)")
	out := outputFlag(fs, "table", "dot", "json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope graph [--window 1m] [--view service|version] [-o table|dot|json] [--server URL]")
		fs.PrintDefaults()
	}
	pos, code, ok := parse(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "graph", "unexpected arguments %q", pos)
	}
	if err := checkFormat(*out, "table", "dot", "json"); err != nil {
		return usageError(stderr, "graph", "%v", err)
	}
	if *view != "" && *view != "service" && *view != "version" {
		return usageError(stderr, "graph", "--view %q: want service or version", *view)
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "graph", "%v", err)
	}
	q := url.Values{}
	if *window != "" {
		q.Set("window", *window)
	}
	if *view != "" {
		q.Set("view", *view)
	}
	var g topology.Graph
	if _, err := c.get(ctx, "/api/mesh/graph", q, &g); err != nil {
		return failure(stderr, "graph", err)
	}
	switch *out {
	case "json":
		return jsonOut(stdout, stderr, g)
	case "dot":
		DOT(stdout, g)
		return ExitOK
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "SOURCE\tTARGET\tRPS\tSUCCESS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99\tHEALTH\tSEEN_BY")
	for _, e := range g.Edges {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Source, e.Target, fmtRPS(meshapi.Number(e.RPS)), fmtPercent(meshapi.Number(1-e.ErrorRate)),
			fmtMs(meshapi.Number(e.P50Ms)), fmtMs(meshapi.Number(e.P95Ms)), fmtMs(meshapi.Number(e.P99Ms)), e.Health, e.SeenBy)
	}
	if err := tw.Flush(); err != nil {
		return failure(stderr, "graph", err)
	}
	cv := g.Coverage
	fmt.Fprintf(stdout, "\n%d nodes, %d edges; %d of %d services meshed", len(g.Nodes), len(g.Edges), cv.MeshedServices, cv.Services)
	if len(cv.UnmeshedServices) > 0 {
		fmt.Fprintf(stdout, " (unmeshed: %s)", strings.Join(cv.UnmeshedServices, ", "))
	}
	fmt.Fprintln(stdout)
	return ExitOK
}

// DOT writes g in Graphviz's DOT language: nodes shaped by kind and
// coloured by health, edges labelled with rps and error rate.
func DOT(w io.Writer, g topology.Graph) {
	q := strconv.Quote
	fmt.Fprintln(w, "digraph mesh {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [fontname="Helvetica", style=filled, fillcolor=white];`)
	for _, n := range g.Nodes {
		shape := "box"
		switch n.Kind {
		case topology.KindDatabase:
			shape = "cylinder"
		case topology.KindUser:
			shape = "ellipse"
		case topology.KindExternal:
			shape = "hexagon"
		}
		style := "filled"
		if n.Kind == topology.KindUnmeshed {
			style = "filled,dashed"
		}
		label := n.ID
		if n.Mode != "" && n.Mode != topology.ModeNone {
			label += "\\n(" + n.Mode + ")"
		}
		fmt.Fprintf(w, "  %s [label=\"%s\", shape=%s, style=%q, color=%s];\n", q(n.ID), strings.ReplaceAll(label, `"`, `\"`), shape, style, q(healthColour(n.Health)))
	}
	for _, e := range g.Edges {
		label := fmt.Sprintf("%.1f rps", e.RPS)
		if e.ErrorRate > 0 {
			label += fmt.Sprintf(", %.2f%% err", e.ErrorRate*100)
		}
		fmt.Fprintf(w, "  %s -> %s [label=%s, color=%s];\n", q(e.Source), q(e.Target), q(label), q(healthColour(e.Health)))
	}
	fmt.Fprintln(w, "}")
}

func healthColour(h string) string {
	switch h {
	case topology.HealthHealthy:
		return "darkgreen"
	case topology.HealthDegraded:
		return "orange"
	case topology.HealthFailing:
		return "red"
	default:
		return "gray"
	}
}
