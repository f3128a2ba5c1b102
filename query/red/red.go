// Package red computes the RED signals (rate, errors, duration) of the mesh
// from the golden metrics (docs/metrics.md) with PromQL: per service, route,
// version or edge. The native API, the Jaeger dependencies endpoint and the
// benchmarks share these queries so they always agree.
//
// Both proxies of a meshed call record it (outbound at the caller, inbound at
// the callee). Every table groups by direction and then keeps the inbound
// numbers of a callee whose proxy reported any, and the outbound numbers
// otherwise, so calls are never counted twice and a callee's version and
// route come from its own proxy.
package red

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// Metric and label names of the golden metrics.
const (
	RequestsMetric = "mesh_requests_total"
	DurationMetric = "mesh_request_duration_seconds"
	ProxyInfo      = "meshscope_proxy_info"
)

// Source evaluates PromQL over the server's storage.
type Source struct {
	Engine    promql.QueryEngine
	Queryable storage.Queryable
}

// Instant evaluates q at ts and returns its vector.
func (s Source) Instant(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	qry, err := s.Engine.NewInstantQuery(ctx, s.Queryable, nil, q, ts)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("query %q: %w", q, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	// Copy: the result's memory is reused after Close.
	out := make(promql.Vector, len(v))
	for i, smp := range v {
		out[i] = promql.Sample{T: smp.T, F: smp.F, Metric: smp.Metric.Copy()}
	}
	return out, nil
}

// instantAll evaluates the queries concurrently at ts.
func (s Source) instantAll(ctx context.Context, ts time.Time, qs ...string) ([]promql.Vector, error) {
	out := make([]promql.Vector, len(qs))
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() { out[i], errs[i] = s.Instant(ctx, q, ts) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Row is one line of a RED table.
type Row struct {
	Labels      map[string]string // the group-by labels
	Direction   string            // "inbound" or "outbound": whose proxy's numbers these are
	RPS         float64           // requests per second over the window
	Requests    float64           // requests in the window (RPS × window)
	Failures    float64           // failed requests per second
	SuccessRate float64           // 0..1; NaN when there were no requests
	P50, P95    float64           // seconds; NaN when unknown
	P99         float64
}

// Key joins the row's values of by (for sorting and lookups).
func (r Row) Key(by []string) string {
	parts := make([]string, len(by))
	for i, b := range by {
		parts[i] = r.Labels[b]
	}
	return strings.Join(parts, "\x00")
}

// Matchers renders label equality matchers (sorted by name) for use inside
// a selector's braces.
func Matchers(eq map[string]string) string {
	keys := make([]string, 0, len(eq))
	for k := range eq {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(eq[k]))
	}
	return strings.Join(parts, ",")
}

// joinSel joins non-empty matcher lists with commas.
func joinSel(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// Range renders a duration as a PromQL range ("1m", "30s", "1500ms").
func Range(d time.Duration) string { return model.Duration(d).String() }

// Table returns the RED table grouped by the labels in by (for example
// ["destination_service"] or ["source_service","destination_service"]),
// over series matching the extra equality matchers, for the window ending
// at ts. Rows are sorted by by's values.
func (s Source) Table(ctx context.Context, by []string, match map[string]string, window time.Duration, ts time.Time) ([]Row, error) {
	if window <= 0 {
		return nil, errors.New("window must be positive")
	}
	sel := Matchers(match)
	grp := strings.Join(append([]string{"direction"}, by...), ", ")
	w := Range(window)
	counts, err := s.Instant(ctx, fmt.Sprintf(`sum by (%s, outcome) (rate(%s{%s}[%s]))`, grp, RequestsMetric, sel, w), ts)
	if err != nil {
		return nil, err
	}
	type dirKey struct{ dir, key string }
	rows := map[dirKey]*Row{}
	get := func(lbls map[string]string) *Row {
		k := dirKey{lbls["direction"], keyOf(lbls, by)}
		r := rows[k]
		if r == nil {
			r = &Row{Labels: map[string]string{}, Direction: lbls["direction"], SuccessRate: math.NaN(), P50: math.NaN(), P95: math.NaN(), P99: math.NaN()}
			for _, b := range by {
				r.Labels[b] = lbls[b]
			}
			rows[k] = r
		}
		return r
	}
	for _, smp := range counts {
		lbls := smp.Metric.Map()
		r := get(lbls)
		r.RPS += smp.F
		if lbls["outcome"] == "failure" {
			r.Failures += smp.F
		}
	}
	// Pick one direction. When the table is grouped by destination service,
	// the choice is made per destination: a callee whose own proxy reported
	// traffic is described by its inbound numbers only (the callers' proxies
	// may not know its version or route template); otherwise per row.
	perDst := slices.Contains(by, "destination_service")
	inboundDst := map[string]bool{}
	if perDst {
		for _, r := range rows {
			if r.Direction == "inbound" && r.RPS > 0 {
				inboundDst[r.Labels["destination_service"]] = true
			}
		}
	}
	// Classic buckets (the proxies' default): one query for the bucket
	// rates, quantiles computed with PromQL's own histogram_quantile code.
	// Per destination only the chosen direction's buckets are read, which
	// halves the series touched in a fully meshed mesh.
	bucketExpr := fmt.Sprintf(`sum by (%s, le) (rate(%s_bucket{%s}[%s]))`, grp, DurationMetric, sel, w)
	if perDst {
		bucketExpr = fmt.Sprintf(`sum by (%s, le) (rate(%s_bucket{%s}[%s]))`, grp, DurationMetric, joinSel(sel, `direction="inbound"`), w)
		var outOnly []string
		seen := map[string]bool{}
		for _, r := range rows {
			d := r.Labels["destination_service"]
			if r.Direction != "inbound" && !inboundDst[d] && !seen[d] {
				seen[d] = true
				outOnly = append(outOnly, regexp.QuoteMeta(d))
			}
		}
		if len(outOnly) > 0 {
			slices.Sort(outOnly)
			bucketExpr += fmt.Sprintf(` or sum by (%s, le) (rate(%s_bucket{%s}[%s]))`, grp, DurationMetric,
				joinSel(sel, `direction!="inbound"`, "destination_service=~"+strconv.Quote(strings.Join(outOnly, "|"))), w)
		}
	}
	vecs, err := s.instantAll(ctx, ts, bucketExpr, fmt.Sprintf(`count by (%s) (rate(%s{%s}[%s]))`, grp, DurationMetric, sel, w))
	if err != nil {
		return nil, err
	}
	bk, native := vecs[0], vecs[1]
	buckets := map[dirKey]promql.Buckets{}
	for _, smp := range bk {
		lbls := smp.Metric.Map()
		k := dirKey{lbls["direction"], keyOf(lbls, by)}
		if _, ok := rows[k]; !ok {
			continue
		}
		le, err := strconv.ParseFloat(lbls["le"], 64)
		if err != nil {
			continue // not a bucket boundary: ignored, as histogram_quantile does
		}
		buckets[k] = append(buckets[k], promql.Bucket{UpperBound: le, Count: smp.F})
	}
	for k, b := range buckets {
		r := rows[k]
		r.P50, _, _, _, _, _ = promql.BucketQuantile(0.5, b)
		r.P95, _, _, _, _, _ = promql.BucketQuantile(0.95, b)
		r.P99, _, _, _, _, _ = promql.BucketQuantile(0.99, b)
	}
	// Native histograms, when a producer sends them.
	if len(native) > 0 {
		for _, q := range []struct {
			phi float64
			dst func(*Row) *float64
		}{
			{0.5, func(r *Row) *float64 { return &r.P50 }},
			{0.95, func(r *Row) *float64 { return &r.P95 }},
			{0.99, func(r *Row) *float64 { return &r.P99 }},
		} {
			v, err := s.Instant(ctx, fmt.Sprintf(`histogram_quantile(%g, sum by (%s) (rate(%s{%s}[%s])))`, q.phi, grp, DurationMetric, sel, w), ts)
			if err != nil {
				return nil, err
			}
			for _, smp := range v {
				lbls := smp.Metric.Map()
				r, ok := rows[dirKey{lbls["direction"], keyOf(lbls, by)}]
				if ok && math.IsNaN(*q.dst(r)) {
					*q.dst(r) = smp.F
				}
			}
		}
	}
	best := map[string]*Row{}
	for k, r := range rows {
		if perDst {
			if inboundDst[r.Labels["destination_service"]] != (r.Direction == "inbound") {
				continue
			}
			best[k.key] = r
			continue
		}
		cur := best[k.key]
		switch {
		case cur == nil:
			best[k.key] = r
		case r.Direction == "inbound" && (r.RPS > 0 || cur.RPS == 0):
			best[k.key] = r
		case cur.Direction == "inbound" && cur.RPS == 0 && r.RPS > 0:
			best[k.key] = r
		}
	}
	out := make([]Row, 0, len(best))
	for _, r := range best {
		r.Requests = r.RPS * window.Seconds()
		if r.RPS > 0 {
			r.SuccessRate = 1 - r.Failures/r.RPS
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key(by) < out[j].Key(by) })
	return out, nil
}

func keyOf(lbls map[string]string, by []string) string {
	parts := make([]string, len(by))
	for i, b := range by {
		parts[i] = lbls[b]
	}
	return strings.Join(parts, "\x00")
}

// Dependency is a caller→callee pair and its call count over a window.
type Dependency struct {
	Parent, Child string
	CallCount     uint64
}

// Dependencies returns the service dependencies seen in the lookback window
// ending at end, with call counts from mesh_requests_total, sorted by parent
// then child.
func (s Source) Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]Dependency, error) {
	if lookback <= 0 {
		return nil, errors.New("lookback must be positive")
	}
	v, err := s.Instant(ctx, fmt.Sprintf(`sum by (direction, source_service, destination_service) (increase(%s[%s]))`, RequestsMetric, Range(lookback)), end)
	if err != nil {
		return nil, err
	}
	type pair struct{ p, c string }
	in, out := map[pair]float64{}, map[pair]float64{}
	for _, smp := range v {
		l := smp.Metric.Map()
		k := pair{l["source_service"], l["destination_service"]}
		if l["direction"] == "inbound" {
			in[k] += smp.F
		} else {
			out[k] += smp.F
		}
	}
	for k, n := range out {
		if _, ok := in[k]; !ok {
			in[k] = n
		}
	}
	deps := make([]Dependency, 0, len(in))
	for k, n := range in {
		if k.p == "" || k.c == "" {
			continue
		}
		deps = append(deps, Dependency{Parent: k.p, Child: k.c, CallCount: uint64(math.Round(n))})
	}
	sort.Slice(deps, func(i, j int) bool {
		if deps[i].Parent != deps[j].Parent {
			return deps[i].Parent < deps[j].Parent
		}
		return deps[i].Child < deps[j].Child
	})
	return deps, nil
}

// Proxy is one reporting proxy (a meshscope_proxy_info series).
type Proxy struct {
	Service, Version, Mode string
}

// Proxies returns the proxies whose meshscope_proxy_info was seen in the
// window ending at ts, sorted by service and version.
func (s Source) Proxies(ctx context.Context, window time.Duration, ts time.Time) ([]Proxy, error) {
	if window <= 0 {
		return nil, errors.New("window must be positive")
	}
	v, err := s.Instant(ctx, fmt.Sprintf(`max by (service, version, mode) (last_over_time(%s[%s]))`, ProxyInfo, Range(window)), ts)
	if err != nil {
		return nil, err
	}
	out := make([]Proxy, 0, len(v))
	for _, smp := range v {
		l := smp.Metric.Map()
		out = append(out, Proxy{Service: l["service"], Version: l["version"], Mode: l["mode"]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		if out[i].Version != out[j].Version {
			return out[i].Version < out[j].Version
		}
		return out[i].Mode < out[j].Mode
	})
	return out, nil
}

// Modes folds proxies into a mode per key: "observe", "enforce", or "mixed"
// when a key's proxies disagree. key picks the grouping (service, or
// service@version).
func Modes(proxies []Proxy, key func(Proxy) string) map[string]string {
	m := map[string]string{}
	for _, p := range proxies {
		k := key(p)
		if cur, ok := m[k]; ok && cur != p.Mode {
			m[k] = "mixed"
			continue
		}
		m[k] = p.Mode
	}
	return m
}
