package topology

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// RED is the golden signals of every flow of the mesh over one window: the
// one source of every RED figure Meshscope shows. The graph (both views),
// the native tables (services, routes, versions, edges), the CLI (which
// reads those) and the Jaeger dependencies are projections of it, summed
// from the same totals (the per-edge aggregates where they cover the
// window, else the raw golden series; span-derived edges where no proxy
// saw a pair), so one figure is identical wherever it is shown.
type RED struct {
	At     time.Time
	Window time.Duration
	// CoveredSeconds is how many seconds of the window have data (the
	// window's length when the data reaches back before its start).
	CoveredSeconds float64
	a              *assembled
	th             thresholds
}

// Row is one line of a RED table: a group of flows and their signals.
type Row struct {
	Source  string // edges: the caller ("unknown" for callers outside the mesh)
	Service string // the called service
	Version string // versions: the called version
	Route   string // routes: the route template ("unmatched", or "" when not labelled)
	// SeenBy is whose report the numbers are: "inbound" (the callee's proxy),
	// "outbound" (only the caller's proxy: the callee is unmeshed) or
	// "spans" (span pairing: no proxy saw the calls).
	SeenBy string
	Signals
}

// RED computes the signals of the window ending at at. Builds for API
// requests share a small number of build slots with on-demand graphs.
func (t *Topology) RED(ctx context.Context, at time.Time, window time.Duration) (*RED, error) {
	if window <= 0 {
		return nil, badParam("window", "%s is not positive", window)
	}
	select {
	case t.onDemand <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a build slot: %w", ctx.Err())
	}
	defer func() { <-t.onDemand }()
	a, err := t.assemble(ctx, at, window, true)
	if err != nil {
		return nil, err
	}
	return &RED{At: a.raw.at, Window: window, CoveredSeconds: a.raw.covered, a: a, th: t.th}, nil
}

// Graph is the graph of view over the same window (what GET /api/mesh/graph
// answers).
func (r *RED) Graph(view string) (*Graph, error) {
	v, err := parseView(view)
	if err != nil {
		return nil, err
	}
	return r.a.graph(v, r.th), nil
}

// Services has one row per called service (every node kind but callers
// outside the mesh), sorted: the signals of the graph's service-view node.
func (r *RED) Services() []Row {
	return r.group(r.a.keys, r.a.edges, func(k fineKey) Row { return Row{Service: k.dst} })
}

// Versions has one row per called service and version, sorted: the
// signals of the version-view node of a meshed service's version.
func (r *RED) Versions() []Row {
	return r.group(r.a.keys, r.a.edges, func(k fineKey) Row { return Row{Service: k.dst, Version: k.dstVer} })
}

// Routes has one row per called service and route, sorted.
func (r *RED) Routes() []Row { return r.RoutesOf("", "") }

// RoutesOf is Routes over the requests from source only and to the called
// version only ("" = any): the routes of one graph edge (source) or of one
// version-view node (version).
func (r *RED) RoutesOf(source, version string) []Row {
	keys := r.a.rkeys
	if source != "" || version != "" {
		keys = slices.DeleteFunc(slices.Clone(keys), func(k fineKey) bool {
			return (source != "" && k.src != source) || (version != "" && k.dstVer != version)
		})
	}
	return r.group(keys, r.a.routes, func(k fineKey) Row { return Row{Service: k.dst, Route: k.route} })
}

// Edges has one row per caller and callee, sorted: the signals of the
// graph's service-view edge.
func (r *RED) Edges() []Row {
	return r.group(r.a.keys, r.a.edges, func(k fineKey) Row { return Row{Source: k.src, Service: k.dst} })
}

// group sums the flows of keys (in their order, as the graph does) by the
// row rowOf gives, and returns the rows sorted.
func (r *RED) group(keys []fineKey, flows map[fineKey]*fineEdge, rowOf func(fineKey) Row) []Row {
	type acc struct {
		row   Row
		stats fineStats
		sides uint8 // 1 inbound, 2 outbound, 4 spans
	}
	accs := map[Row]*acc{}
	var order []Row
	for _, k := range keys {
		fe := flows[k]
		id := rowOf(k)
		g := accs[id]
		if g == nil {
			g = &acc{row: id}
			accs[id] = g
			order = append(order, id)
		}
		g.stats.add(&fe.fineStats)
		switch fe.seenBy {
		case "both", "destination":
			g.sides |= 1
		case "source":
			g.sides |= 2
		default:
			g.sides |= 4
		}
	}
	secs := r.Window.Seconds()
	out := make([]Row, 0, len(order))
	for _, id := range order {
		g := accs[id]
		row := g.row
		switch {
		case g.sides&1 != 0:
			row.SeenBy = "inbound"
		case g.sides&2 != 0:
			row.SeenBy = "outbound"
		default:
			row.SeenBy = "spans"
		}
		row.Signals = g.stats.signals(secs)
		out = append(out, row)
	}
	sortRows(out)
	return out
}

func sortRows(rows []Row) {
	slices.SortFunc(rows, func(x, y Row) int {
		return cmp.Or(strings.Compare(x.Source, y.Source), strings.Compare(x.Service, y.Service),
			strings.Compare(x.Version, y.Version), strings.Compare(x.Route, y.Route))
	})
}

// coverLookback is how far before a window the coverage check looks for a
// sample that shows the data reaches back past the window's start.
const coverLookback = 5 * time.Minute

// coverMetrics are the series whose samples show that the mesh was being
// recorded: every proxy's info, span-derived edges, and the aggregates'
// continuity marker (appended at every build while the server runs).
var coverMetrics = metricProxyInfo + "|" + spanMetricRequests + "|" + metricEdgeSince

// covered returns how many seconds of the window (at-window, at] have data:
// 0 when no sample of coverMetrics lies in the window; else the window's
// length when one also lies at or before its start (up to coverLookback
// before it), and the time from the first sample to at otherwise.
func (b *builder) covered(ctx context.Context, at time.Time, window time.Duration) (float64, error) {
	maxt := at.UnixMilli()
	from := maxt - window.Milliseconds()
	qr, err := b.q.Querier(from-coverLookback.Milliseconds(), maxt)
	if err != nil {
		return 0, fmt.Errorf("checking the window's coverage: %w", err)
	}
	defer qr.Close()
	ss := qr.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, coverMetrics))
	first := int64(math.MaxInt64)
	inWindow := false
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			t := it.AtT()
			first = min(first, t)
			if t > from {
				inWindow = true
				break
			}
		}
		if err := it.Err(); err != nil {
			return 0, fmt.Errorf("checking the window's coverage: %w", err)
		}
	}
	if err := ss.Err(); err != nil {
		return 0, fmt.Errorf("checking the window's coverage: %w", err)
	}
	switch {
	case !inWindow:
		return 0, nil
	case first <= from:
		return window.Seconds(), nil
	}
	return float64(maxt-first) / 1000, nil
}
