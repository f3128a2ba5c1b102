package topology

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
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Views.
const (
	ViewService = "service"
	ViewVersion = "version"
)

// UserNodeID is the id of the node standing for callers that are not known:
// inbound requests with source_service="unknown" and root server spans.
const UserNodeID = "unknown"

// ExternalNodeID is the node of destination_service="external".
const ExternalNodeID = "external"

const unknownVersion = "unknown"

// Metric names read by the builder (docs/metrics.md) and written by the span
// pairing sink (docs/topology.md).
const (
	metricRequests     = "mesh_requests_total"
	metricDuration     = "mesh_request_duration_seconds"
	metricReqBytes     = "mesh_request_bytes_total"
	metricRespBytes    = "mesh_response_bytes_total"
	metricProxyInfo    = "meshscope_proxy_info"
	spanMetricRequests = "traces_service_graph_request_total"
	spanMetricFailed   = "traces_service_graph_request_failed_total"
	spanMetricServer   = "traces_service_graph_request_server_seconds"
	spanMetricClient   = "traces_service_graph_request_client_seconds"
)

// Span-derived connection types (label connection_type).
const (
	connPaired   = ""             // client and server span paired
	connVirtual  = "virtual_node" // lone client span; peer named a service
	connExternal = "external"     // lone client span; peer is an outside host
	connDatabase = "database"     // client span with db.* attributes
	connUser     = "user"         // root server span with no caller
)

// tlsMTLS is the tls label of requests over mesh mTLS (proxy/meshtls);
// anything else is plaintext.
const tlsMTLS = "mtls"

const meshBy = "direction, source_service, source_version, destination_service, destination_version, protocol, route"
const spanBy = "client, client_version, server, server_version, connection_type, protocol"

// fineKey is one flow as the proxies label it. route is the declared route
// template (empty for span-derived flows); the graph sums over routes and
// protocols, the route tables over sources and protocols.
type fineKey struct{ src, srcVer, dst, dstVer, proto, route string }

type spanKey struct {
	fineKey
	conn string
}

// fineStats are the totals of one flow over the window: requests,
// failures and bytes in the window (counts, not rates: the aggregates hold
// whole counts, which add up exactly in any grouping and order, so a figure
// is the same in every view), and the duration buckets (counts).
type fineStats struct {
	req, fail, bytes float64
	// tlsReq are the requests a proxy reported with the tls label (every
	// proxy-reported request; none of a span-derived flow), mtls those of
	// them that ran over mesh mTLS: the one source of an edge's mTLS share.
	tlsReq, mtls float64
	lat          sortedBuckets // request duration buckets (seconds)
	clientLat    sortedBuckets // span client-side buckets (used when lat is empty)
	// nat is the exponential native histogram of the durations where the
	// proxies send one; quantiles use it when it holds every request lat
	// holds (precise: buckets about 9 % wide).
	nat *histogram.FloatHistogram
}

func (s *fineStats) add(o *fineStats) {
	s.req += o.req
	s.fail += o.fail
	s.bytes += o.bytes
	s.tlsReq += o.tlsReq
	s.mtls += o.mtls
	s.lat.add(&o.lat)
	s.clientLat.add(&o.clientLat)
	if o.nat != nil {
		if s.nat == nil {
			s.nat = o.nat.Copy()
		} else {
			s.nat = addHistogram(s.nat, o.nat)
		}
	}
}

type proxyInfo struct{ service, version, mode string }

// rawData is everything the builder reads from the store for one window.
type rawData struct {
	at      time.Time
	window  time.Duration
	mesh    [2]map[fineKey]*fineStats // by direction: 0 inbound, 1 outbound
	spans   map[spanKey]*fineStats
	proxies []proxyInfo
	// aggregates: the mesh edges were read from the per-edge aggregates
	// rather than from the raw golden series.
	aggregates bool
	// memory: the aggregates were summed from the aggregator's memory.
	memory bool
	// covered: seconds of the window that have data.
	covered float64
}

const (
	dirIn  = 0
	dirOut = 1
)

// builder computes graphs from the metrics store with the PromQL engine.
type builder struct {
	engine     promql.QueryEngine
	q          storage.Queryable
	cfg        Config
	aggregates bool // read the per-edge aggregates where they cover the window
	// mem, when set, holds the recent aggregate samples in memory: live
	// builds sum them from there where it covers the window.
	mem *aggregator
}

func windowString(w time.Duration) string { return model.Duration(w).String() }

// query runs one instant query and hands each sample to fn before the
// result's memory is released.
func (b *builder) query(ctx context.Context, qs string, at time.Time, fn func(promql.Sample)) error {
	return b.queryKinds(ctx, qs, at, false, fn)
}

// queryKinds is query; native histogram samples are passed on only when
// hist is set (float samples are then skipped).
func (b *builder) queryKinds(ctx context.Context, qs string, at time.Time, hist bool, fn func(promql.Sample)) error {
	qry, err := b.engine.NewInstantQuery(ctx, b.q, nil, qs, at)
	if err != nil {
		return fmt.Errorf("query %q: %w", qs, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return fmt.Errorf("query %q: %w", qs, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		return fmt.Errorf("query %q: %w", qs, err)
	}
	for _, s := range vec {
		if hist {
			if s.H != nil {
				fn(s)
			}
			continue
		}
		if s.H != nil || math.IsNaN(s.F) || math.IsInf(s.F, 0) {
			continue
		}
		fn(s)
	}
	return nil
}

// fetch reads the golden metrics and the span-derived series for the window
// (at-window, at].
//
// A live build (live set) sums the per-edge aggregates from the
// aggregator's memory where it covers the window; replays read the store.
func (b *builder) fetch(ctx context.Context, at time.Time, window time.Duration, live bool) (*rawData, error) {
	w := windowString(window)
	secs := window.Seconds()
	raw := &rawData{
		at:     at,
		window: window,
		mesh:   [2]map[fineKey]*fineStats{{}, {}},
		spans:  map[spanKey]*fineStats{},
	}
	meshStats := func(s promql.Sample) *fineStats {
		l := s.Metric
		d := dirIn
		k := fineKey{
			src: orUnknown(l.Get("source_service")), srcVer: orUnknown(l.Get("source_version")),
			dst: orUnknown(l.Get("destination_service")), dstVer: orUnknown(l.Get("destination_version")),
			proto: l.Get("protocol"), route: l.Get("route"),
		}
		switch l.Get("direction") {
		case "inbound":
		case "outbound":
			d = dirOut
		case "ingress":
			k = ingressKey(k)
		default:
			return nil
		}
		st := raw.mesh[d][k]
		if st == nil {
			st = &fineStats{}
			raw.mesh[d][k] = st
		}
		return st
	}
	spanStats := func(s promql.Sample) *fineStats {
		l := s.Metric
		k := spanKey{fineKey{
			src: orUnknown(l.Get("client")), srcVer: orUnknown(l.Get("client_version")),
			dst: orUnknown(l.Get("server")), dstVer: orUnknown(l.Get("server_version")),
			proto: l.Get("protocol"),
		}, l.Get("connection_type")}
		st := raw.spans[k]
		if st == nil {
			st = &fineStats{}
			raw.spans[k] = st
		}
		return st
	}
	// Rates read with PromQL (raw series, span-derived series) are turned
	// into counts over the window (what increase() gives).
	addRate := func(s promql.Sample, st *fineStats, failed bool) {
		st.req += s.F * secs
		if failed {
			st.fail += s.F * secs
		}
	}
	le := func(s promql.Sample) (float64, bool) {
		v, err := strconv.ParseFloat(s.Metric.Get("le"), 64)
		return v, err == nil
	}

	addBytes := func(s promql.Sample) {
		if st := meshStats(s); st != nil {
			st.bytes += s.F * secs
		}
	}
	latFn := func(stats func(promql.Sample) *fineStats, client bool) func(promql.Sample) {
		return func(s promql.Sample) {
			st := stats(s)
			v, ok := le(s)
			if st == nil || !ok {
				return
			}
			target := &st.lat
			if client {
				target = &st.clientLat
			}
			target.addAt(v, s.F*secs)
		}
	}
	nativeFn := func(s promql.Sample) {
		if st := meshStats(s); st != nil {
			st.addNative(s.H.Mul(secs))
		}
	}
	// Series with a single sample in the window have no rate yet (a brand-new
	// edge: the first push of a cumulative counter). They make the edge
	// appear at once; if the series has no sample before the window either,
	// it is new and its value is the count since it started, so it also
	// gives the rate estimate value/window until rate() takes over.
	single := func(metric, by string) string {
		return fmt.Sprintf("sum by (%s) (last_over_time(%s[%s]) unless rate(%s[%s]))", by, metric, w, metric, w)
	}
	fresh := func(metric, by string) string {
		return fmt.Sprintf("sum by (%s) ((last_over_time(%s[%s]) unless rate(%s[%s])) unless present_over_time(%s[%s] offset %s))",
			by, metric, w, metric, w, metric, w, w)
	}
	var singleMesh, singleSpans int
	isFailure := func(s promql.Sample) bool { return s.Metric.Get("outcome") == "failure" }
	// addTLS counts n requests of a golden series by its tls label.
	addTLS := func(s promql.Sample, st *fineStats, n float64) {
		st.tlsReq += n
		if s.Metric.Get("tls") == tlsMTLS {
			st.mtls += n
		}
	}

	// The per-edge aggregates are used when they are continuous over the
	// whole window; otherwise the raw golden series are read.
	if b.aggregates {
		var since float64
		var ok bool
		if err := b.query(ctx, fmt.Sprintf("min_over_time(%s[%s])", metricEdgeSince, w), at, func(s promql.Sample) {
			since, ok = s.F, true
		}); err != nil {
			return nil, err
		}
		raw.aggregates = aggregatesCover(since, ok, at, window, b.cfg.AggregateInterval)
		raw.memory = raw.aggregates && live && b.mem != nil && b.mem.covers(at.UnixMilli(), window.Milliseconds())
	}
	perSec := func(fn func(promql.Sample, *fineStats)) func(promql.Sample) {
		return func(s promql.Sample) {
			if st := meshStats(s); st != nil {
				fn(s, st)
			}
		}
	}
	var meshSpecs []querySpec
	if raw.aggregates {
		// One read per direction, so that the two run in parallel.
		for _, dir := range []string{"inbound", "outbound"} {
			meshSpecs = append(meshSpecs, b.sumSpec(at, window, raw.memory, metricEdgeRequests,
				[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "direction", dir)},
				perSec(func(s promql.Sample, st *fineStats) { st.req += s.F; addTLS(s, st, s.F) })))
		}
	} else {
		meshSpecs = []querySpec{
			{qs: fmt.Sprintf("sum by (%s, outcome, tls) (rate(%s[%s]))", meshBy, metricRequests, w), fn: func(s promql.Sample) {
				if st := meshStats(s); st != nil {
					addRate(s, st, isFailure(s))
					addTLS(s, st, s.F*secs)
				}
			}},
			{qs: single(metricRequests, meshBy+", outcome"), fn: func(s promql.Sample) { meshStats(s); singleMesh++ }},
		}
	}

	// Phase 1: requests (which edges exist, from which sides), proxies,
	// spans, and how much of the window has data.
	if err := b.runAll(ctx, at, append(meshSpecs, []querySpec{
		{fn: func(s promql.Sample) { raw.covered = s.F }, read: func(ctx context.Context) ([]promql.Sample, error) {
			c, err := b.covered(ctx, at, window)
			return []promql.Sample{{F: c}}, err
		}},
		{qs: fmt.Sprintf("max by (service, version, mode) (last_over_time(%s[%s]))", metricProxyInfo, w), fn: func(s promql.Sample) {
			l := s.Metric
			if svc := l.Get("service"); svc != "" {
				raw.proxies = append(raw.proxies, proxyInfo{svc, orUnknown(l.Get("version")), l.Get("mode")})
			}
		}},
		{qs: fmt.Sprintf("sum by (%s) (rate(%s[%s]))", spanBy, spanMetricRequests, w), fn: func(s promql.Sample) { addRate(s, spanStats(s), false) }},
		{qs: fmt.Sprintf("sum by (%s) (rate(%s[%s]))", spanBy, spanMetricFailed, w), fn: func(s promql.Sample) { spanStats(s).fail += s.F * secs }},
		{qs: fmt.Sprintf("sum by (%s, le) (rate(%s_bucket[%s]))", spanBy, spanMetricServer, w), fn: latFn(spanStats, false)},
		{qs: fmt.Sprintf("sum by (%s, le) (rate(%s_bucket[%s]))", spanBy, spanMetricClient, w), fn: latFn(spanStats, true)},
		{qs: single(spanMetricRequests, spanBy), fn: func(s promql.Sample) { spanStats(s); singleSpans++ }},
	}...)); err != nil {
		return nil, err
	}

	// Phase 2: latency and bytes of the side the graph uses. Every inbound
	// report is used; outbound reports only for pairs no inbound report
	// covers, selected by destination so that the (many) bucket series of
	// calls both proxies report are read once.
	inbound := map[[2]string]bool{}
	for k := range raw.mesh[dirIn] {
		inbound[[2]string{k.src, k.dst}] = true
	}
	outDst := map[string]bool{}
	for k := range raw.mesh[dirOut] {
		if !inbound[[2]string{k.src, k.dst}] {
			outDst[k.dst] = true
		}
	}
	sels := []string{`direction=~"inbound|ingress"`}
	selMatchers := [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, "direction", "inbound|ingress")}}
	if len(outDst) > 0 {
		alts := make([]string, 0, len(outDst))
		for _, d := range sortedKeys(outDst) {
			if d == unknownVersion {
				alts = append(alts, "")
			}
			alts = append(alts, regexp.QuoteMeta(d))
		}
		re := strings.Join(alts, "|")
		sels = append(sels, fmt.Sprintf(`direction="outbound", destination_service=~%q`, re))
		reM, err := labels.NewMatcher(labels.MatchRegexp, "destination_service", re)
		if err != nil {
			return nil, fmt.Errorf("selecting outbound reports: %w", err)
		}
		selMatchers = append(selMatchers, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "direction", "outbound"), reM})
	}
	var specs []querySpec
	for i, sel := range sels {
		if raw.aggregates {
			specs = append(specs,
				b.sumSpec(at, window, raw.memory, metricEdgeFailures, selMatchers[i], perSec(func(s promql.Sample, st *fineStats) { st.fail += s.F })),
				b.sumSpec(at, window, raw.memory, metricEdgeBytes, selMatchers[i], perSec(func(s promql.Sample, st *fineStats) { st.bytes += s.F })),
				b.sumSpec(at, window, raw.memory, metricEdgeDuration, selMatchers[i], perSec(func(s promql.Sample, st *fineStats) {
					if s.H == nil {
						return
					}
					st.lat.addNative(s.H)
				})),
				b.sumSpec(at, window, raw.memory, metricEdgeNative, selMatchers[i], perSec(func(s promql.Sample, st *fineStats) {
					if s.H != nil {
						st.addNative(s.H)
					}
				})),
			)
			continue
		}
		specs = append(specs,
			querySpec{qs: fmt.Sprintf("sum by (%s, le) (rate(%s_bucket{%s}[%s]))", meshBy, metricDuration, sel, w), fn: latFn(meshStats, false)},
			// Proxies export classic buckets (docs/metrics.md); a store that
			// keeps the duration as a native histogram is read too.
			querySpec{qs: fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", meshBy, metricDuration, sel, w), hist: true, fn: nativeFn},
			querySpec{qs: fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", meshBy, metricReqBytes, sel, w), fn: addBytes},
			querySpec{qs: fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", meshBy, metricRespBytes, sel, w), fn: addBytes},
		)
	}
	if singleMesh > 0 {
		specs = append(specs, querySpec{qs: fresh(metricRequests, meshBy+", outcome, tls"), fn: func(s promql.Sample) {
			if st := meshStats(s); st != nil {
				addRate(promql.Sample{F: s.F / secs}, st, isFailure(s)) // the count since the series started
				addTLS(s, st, s.F)
			}
		}})
	}
	if singleSpans > 0 {
		specs = append(specs, querySpec{qs: fresh(spanMetricRequests, spanBy), fn: func(s promql.Sample) {
			addRate(promql.Sample{F: s.F / secs}, spanStats(s), false)
		}})
	}
	if err := b.runAll(ctx, at, specs); err != nil {
		return nil, err
	}
	return raw, nil
}

// querySpec is one instant query of a build and what to do with each of
// its samples.
type querySpec struct {
	qs   string
	hist bool // pass native histogram samples instead of floats
	fn   func(promql.Sample)
	// read, when set, replaces the PromQL query qs.
	read func(ctx context.Context) ([]promql.Sample, error)
}

// sumSpec reads the series of metric matching ms over the window and
// passes, per series, the sum of its samples (what PromQL's
// sum_over_time(metric{ms}[window]) gives, read straight from the store:
// the aggregates are plain sums, and this skips the engine's per-series
// overhead). Histogram sums are passed in H.
//
// With memory set, the sums come from the aggregator's memory when it
// (still) covers the window (the same samples, summed in the same order).
func (b *builder) sumSpec(at time.Time, window time.Duration, memory bool, metric string, ms []*labels.Matcher, fn func(promql.Sample)) querySpec {
	ms = append([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, metric)}, ms...)
	return querySpec{qs: metric, fn: fn, read: func(ctx context.Context) ([]promql.Sample, error) {
		if i := slices.Index(edgeNames[:], metric); memory && i >= 0 {
			if out, ok := b.mem.memSum(i, ms, at.UnixMilli(), window.Milliseconds()); ok {
				return out, nil
			}
		}
		return b.sumOverWindow(ctx, at, window, ms)
	}}
}

func (b *builder) sumOverWindow(ctx context.Context, at time.Time, window time.Duration, ms []*labels.Matcher) ([]promql.Sample, error) {
	maxt := at.UnixMilli()
	qr, err := b.q.Querier(maxt-window.Milliseconds()+1, maxt) // (at-window, at] like a range selector
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ms[0].Value, err)
	}
	defer qr.Close()
	ss := qr.Select(ctx, false, nil, ms...)
	var out []promql.Sample
	var it chunkenc.Iterator
	var tmp *histogram.FloatHistogram
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		var sum float64
		var h *histogram.FloatHistogram
		n := 0
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				_, v := it.At()
				sum += v
				n++
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				_, tmp = it.AtFloatHistogram(tmp)
				if h == nil {
					h = tmp.Copy()
				} else if r, _, _, err := h.Add(tmp); err == nil {
					h = r
				}
				n++
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", s.Labels(), err)
		}
		if n > 0 {
			out = append(out, promql.Sample{Metric: s.Labels(), F: sum, H: h})
		}
	}
	if err := ss.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", ms[0].Value, err)
	}
	return out, nil
}

// buildConcurrency is how many queries of one build run at once.
const buildConcurrency = 2

// runAll evaluates the queries concurrently, then hands their samples to
// the specs' functions one query after the other, in order.
func (b *builder) runAll(ctx context.Context, at time.Time, specs []querySpec) error {
	results := make([][]promql.Sample, len(specs))
	errs := make([]error, len(specs))
	sem := make(chan struct{}, buildConcurrency)
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if sp.read != nil {
				results[i], errs[i] = sp.read(ctx)
				return
			}
			errs[i] = b.queryKinds(ctx, sp.qs, at, sp.hist, func(s promql.Sample) {
				if s.H != nil {
					s.H = s.H.Copy()
				}
				results[i] = append(results[i], s)
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, sp := range specs {
		for _, s := range results[i] {
			sp.fn(s)
		}
	}
	return nil
}

// ingressKey turns a gateway's ingress report (source = the gateway,
// destination = the route's service) into what the gateway serves: a
// request from outside the mesh (the user node) to the gateway, on the
// route. The gateway → service edge comes from the service's inbound
// report, as for any caller; the gateway is the graph's entry node with
// its per-route RED (docs/gateway.md).
func ingressKey(k fineKey) fineKey {
	return fineKey{src: UserNodeID, srcVer: unknownVersion, dst: k.src, dstVer: k.srcVer, proto: k.proto, route: k.route}
}

func orUnknown(s string) string {
	if s == "" {
		return unknownVersion
	}
	return s
}

// fineEdge is traffic between two service versions after one side was
// chosen per service pair.
type fineEdge struct {
	fineStats
	protos map[string]bool
	seenBy string
	mesh   bool
}

type pairSides struct{ in, out bool }

func (p pairSides) seenBy() string {
	switch {
	case p.in && p.out:
		return "both"
	case p.in:
		return "destination"
	default:
		return "source"
	}
}

// assembled is rawData resolved into service-version edges and node kinds;
// both views are projections of it.
type assembled struct {
	raw   *rawData
	edges map[fineKey]*fineEdge // proto and route are always ""
	keys  []fineKey             // of edges, sorted: sums run in this order
	// routes are the flows of the chosen sides by route (proto ""), for
	// the route tables; rkeys sorted.
	routes   map[fineKey]*fineEdge
	rkeys    []fineKey
	kinds    map[string]string    // service -> kind
	modes    map[string][]string  // service -> proxy modes
	verModes map[[2]string]string // (service, version) -> mode
	versions map[string]map[string]bool
	proxies  map[string]bool
}

func assemble(raw *rawData) *assembled {
	a := &assembled{
		raw:      raw,
		edges:    map[fineKey]*fineEdge{},
		routes:   map[fineKey]*fineEdge{},
		kinds:    map[string]string{},
		modes:    map[string][]string{},
		verModes: map[[2]string]string{},
		versions: map[string]map[string]bool{},
		proxies:  map[string]bool{},
	}
	addVersion := func(svc, ver string) {
		if ver == "" || ver == unknownVersion {
			return
		}
		m := a.versions[svc]
		if m == nil {
			m = map[string]bool{}
			a.versions[svc] = m
		}
		m[ver] = true
	}
	meshed := map[string]bool{}
	for _, p := range raw.proxies {
		meshed[p.service] = true
		a.proxies[p.service] = true
		a.modes[p.service] = append(a.modes[p.service], p.mode)
		key := [2]string{p.service, p.version}
		if m, ok := a.verModes[key]; !ok || m == ModeEnforce { // enforce only if every proxy enforces
			a.verModes[key] = normMode(p.mode)
		}
		addVersion(p.service, p.version)
	}
	pairs := map[[2]string]*pairSides{}
	for d := range raw.mesh {
		for k := range raw.mesh[d] {
			pk := [2]string{k.src, k.dst}
			p := pairs[pk]
			if p == nil {
				p = &pairSides{}
				pairs[pk] = p
			}
			if d == dirIn {
				p.in = true
				meshed[k.dst] = true
			} else {
				p.out = true
				meshed[k.src] = true
			}
		}
	}
	get := func(k fineKey) *fineEdge {
		k.proto, k.route = "", ""
		e := a.edges[k]
		if e == nil {
			e = &fineEdge{protos: map[string]bool{}}
			a.edges[k] = e
		}
		return e
	}
	getRoute := func(k fineKey) *fineEdge {
		k.proto = ""
		e := a.routes[k]
		if e == nil {
			e = &fineEdge{protos: map[string]bool{}}
			a.routes[k] = e
		}
		return e
	}
	for d := range raw.mesh {
		// In key order, so that an edge's sums (several protocols) do not
		// depend on map order: the live graph and the replay are equal.
		for _, k := range sortedFineKeys(raw.mesh[d]) {
			st := raw.mesh[d][k]
			p := pairs[[2]string{k.src, k.dst}]
			if (d == dirIn) != p.in { // prefer the destination's (inbound) report
				continue
			}
			for _, e := range [2]*fineEdge{get(k), getRoute(k)} {
				e.add(st)
				if k.proto != "" {
					e.protos[k.proto] = true
				}
				e.seenBy = p.seenBy()
				e.mesh = true
			}
			addVersion(k.src, k.srcVer)
			addVersion(k.dst, k.dstVer)
		}
	}
	hints := map[string]string{}
	spanKeys := make([]spanKey, 0, len(raw.spans))
	for k := range raw.spans {
		spanKeys = append(spanKeys, k)
	}
	slices.SortFunc(spanKeys, func(x, y spanKey) int {
		if c := compareFineKeys(x.fineKey, y.fineKey); c != 0 {
			return c
		}
		return strings.Compare(x.conn, y.conn)
	})
	for _, k := range spanKeys {
		st := raw.spans[k]
		fk := k.fineKey
		if k.conn == connUser {
			fk.src, fk.srcVer = UserNodeID, unknownVersion
		}
		if pairs[[2]string{fk.src, fk.dst}] != nil {
			continue // the proxies saw this pair: their numbers win
		}
		for _, e := range [2]*fineEdge{get(fk), getRoute(fk)} {
			e.add(st)
			if k.proto != "" {
				e.protos[k.proto] = true
			}
			e.seenBy = "spans"
		}
		switch k.conn {
		case connDatabase:
			hints[fk.dst] = KindDatabase
		case connExternal:
			if hints[fk.dst] == "" {
				hints[fk.dst] = KindExternal
			}
		}
		addVersion(fk.src, fk.srcVer)
		addVersion(fk.dst, fk.dstVer)
	}
	kindOf := func(svc string) string {
		switch {
		case svc == UserNodeID:
			return KindUser
		case meshed[svc]:
			return KindService
		case svc == ExternalNodeID:
			return KindExternal
		case hints[svc] != "":
			return hints[svc]
		default:
			return KindUnmeshed
		}
	}
	for svc := range meshed {
		a.kinds[svc] = kindOf(svc)
	}
	a.keys = sortedFineKeys(a.edges)
	a.rkeys = sortedFineKeys(a.routes)
	for k := range a.edges {
		a.kinds[k.src] = kindOf(k.src)
		a.kinds[k.dst] = kindOf(k.dst)
	}
	return a
}

// sortedFineKeys returns m's keys in compareFineKeys order.
func sortedFineKeys[V any](m map[fineKey]V) []fineKey {
	keys := make([]fineKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareFineKeys)
	return keys
}

func compareFineKeys(x, y fineKey) int {
	if c := strings.Compare(x.src, y.src); c != 0 {
		return c
	}
	if c := strings.Compare(x.dst, y.dst); c != 0 {
		return c
	}
	if c := strings.Compare(x.srcVer, y.srcVer); c != 0 {
		return c
	}
	if c := strings.Compare(x.dstVer, y.dstVer); c != 0 {
		return c
	}
	if c := strings.Compare(x.route, y.route); c != 0 {
		return c
	}
	return strings.Compare(x.proto, y.proto)
}

func normMode(m string) string {
	if m == ModeEnforce {
		return ModeEnforce
	}
	return ModeObserve
}

// serviceMode is enforce when every proxy of svc enforces, observe otherwise.
func (a *assembled) serviceMode(svc string) string {
	ms := a.modes[svc]
	if len(ms) == 0 {
		return ModeObserve
	}
	for _, m := range ms {
		if m != ModeEnforce {
			return ModeObserve
		}
	}
	return ModeEnforce
}

func splitByVersion(kind string) bool { return kind == KindService || kind == KindUnmeshed }

type nodeAcc struct {
	node   Node
	stats  fineStats
	protos map[string]bool
}

// graph projects a onto view.
func (a *assembled) graph(view string, th thresholds) *Graph {
	nodes := map[string]*nodeAcc{}
	nodeFor := func(svc, ver string) *nodeAcc {
		kind := a.kinds[svc]
		id := svc
		// Unmeshed services usually have no known version: keep them whole.
		versioned := view == ViewVersion && splitByVersion(kind) && (kind == KindService || ver != unknownVersion)
		if versioned {
			id = svc + "@" + ver
		}
		n := nodes[id]
		if n != nil {
			return n
		}
		n = &nodeAcc{node: Node{ID: id, Service: svc, Kind: kind, Mode: ModeNone}, protos: map[string]bool{}}
		if kind == KindService {
			n.node.Mode = a.serviceMode(svc)
		}
		if versioned {
			n.node.Version = ver
			n.node.Versions = []string{ver}
			if m, ok := a.verModes[[2]string{svc, ver}]; ok {
				n.node.Mode = m
			}
		} else {
			n.node.Versions = sortedKeys(a.versions[svc])
		}
		nodes[id] = n
		return n
	}
	type edgeAcc struct {
		edge   Edge
		stats  fineStats
		protos map[string]bool
	}
	edges := make(map[string]*edgeAcc, len(a.edges))
	for _, k := range a.keys {
		fe := a.edges[k]
		s := nodeFor(k.src, k.srcVer)
		t := nodeFor(k.dst, k.dstVer)
		id := s.node.ID + "->" + t.node.ID
		e := edges[id]
		if e == nil {
			e = &edgeAcc{edge: Edge{ID: id, Source: s.node.ID, Target: t.node.ID, SeenBy: fe.seenBy}, protos: map[string]bool{}}
			edges[id] = e
		}
		e.stats.add(&fe.fineStats)
		t.stats.add(&fe.fineStats)
		for p := range fe.protos {
			e.protos[p] = true
			t.protos[p] = true
		}
		// Callers nobody knows receive nothing: their node carries the
		// traffic they send.
		if s.node.Kind == KindUser {
			s.stats.add(&fe.fineStats)
			for p := range fe.protos {
				s.protos[p] = true
			}
		}
	}
	for _, p := range a.raw.proxies { // meshed services show even without traffic
		nodeFor(p.service, p.version)
	}
	secs := a.raw.window.Seconds()
	g := &Graph{
		At:             a.raw.at,
		Window:         windowString(a.raw.window),
		CoveredSeconds: a.raw.covered,
		View:           view,
		Nodes:          make([]Node, 0, len(nodes)),
		Edges:          make([]Edge, 0, len(edges)),
	}
	for _, n := range nodes {
		n.node.Stats = n.stats.signals(secs).stats()
		n.node.Protocols = sortedKeys(n.protos)
		n.node.Health = th.health(n.node.Stats)
		g.Nodes = append(g.Nodes, n.node)
	}
	for _, e := range edges {
		sig := e.stats.signals(secs)
		e.edge.Stats = sig.stats()
		e.edge.TLS, e.edge.MTLSFraction = tlsState(sig.MTLS)
		e.edge.Protocols = sortedKeys(e.protos)
		e.edge.Health = th.health(e.edge.Stats)
		g.Edges = append(g.Edges, e.edge)
	}
	sortGraph(g)
	g.Coverage = a.coverage()
	return g
}

// coverage is computed at service level whatever the view.
func (a *assembled) coverage() Coverage {
	c := Coverage{UnmeshedServices: []string{}}
	for svc, kind := range a.kinds {
		switch kind {
		case KindService:
			c.Services++
			c.MeshedServices++
			if a.serviceMode(svc) == ModeEnforce {
				c.EnforceServices++
			} else {
				c.ObserveServices++
			}
		case KindUnmeshed:
			c.Services++
			c.UnmeshedServices = append(c.UnmeshedServices, svc)
		}
	}
	sort.Strings(c.UnmeshedServices)
	type pair struct {
		seenBy string
		tls    fineStats
	}
	pairs := map[[2]string]*pair{}
	var meshRPS, allRPS float64
	for _, k := range a.keys {
		e := a.edges[k]
		p := pairs[[2]string{k.src, k.dst}]
		if p == nil {
			p = &pair{}
			pairs[[2]string{k.src, k.dst}] = p
		}
		p.seenBy = e.seenBy
		p.tls.tlsReq += e.tlsReq
		p.tls.mtls += e.mtls
		allRPS += e.req
		if e.mesh {
			meshRPS += e.req
		}
	}
	c.Edges = len(pairs)
	for _, p := range pairs {
		if p.seenBy == "both" {
			c.EdgesBothSides++
		}
		// The service-view edge's tls state, from the same figures.
		switch st, _ := tlsState(p.tls.signals(1).MTLS); st {
		case TLSMutual:
			c.EdgesMTLS++
		case TLSPlaintext, TLSPartial:
			c.EdgesPlaintext++
		}
	}
	if c.Services > 0 {
		c.ServiceFraction = float64(c.MeshedServices) / float64(c.Services)
	}
	if allRPS > 0 {
		c.RequestFraction = meshRPS / allRPS
	}
	return c
}

// tlsState is an edge's tls state and mTLS share from its MTLS signal.
func tlsState(mtls float64) (string, float64) {
	switch {
	case math.IsNaN(mtls):
		return "", 0
	case mtls >= 1:
		return TLSMutual, 1
	case mtls <= 0:
		return TLSPlaintext, 0
	}
	return TLSPartial, mtls
}

// Signals are the RED figures of a flow, node or edge over a window. Every
// view (graph, tables, CLI, Jaeger dependencies) takes its figures from
// here, computed from the same totals, so one figure is the same
// everywhere.
type Signals struct {
	Requests      float64 // requests in the window
	RPS           float64 // Requests / window seconds
	Failures      float64 // failed requests in the window
	ErrorRate     float64 // Failures / Requests (at most 1); NaN without requests
	P50, P95, P99 float64 // latency quantiles in seconds; NaN without duration data
	BytesPerSec   float64 // request + response bytes per second
	// MTLS is the share (0..1) of the requests a proxy reported that ran
	// over mesh mTLS; NaN when no proxy reported any (span-derived flows).
	MTLS float64
}

func (s *fineStats) signals(secs float64) Signals {
	out := Signals{
		Requests: s.req, RPS: s.req / secs, Failures: s.fail, BytesPerSec: s.bytes / secs,
		ErrorRate: math.NaN(), P50: math.NaN(), P95: math.NaN(), P99: math.NaN(), MTLS: math.NaN(),
	}
	if s.req > 0 {
		out.ErrorRate = math.Min(1, s.fail/s.req)
	}
	if s.tlsReq > 0 {
		out.MTLS = math.Min(1, s.mtls/s.tlsReq)
	}
	if s.nativeComplete() {
		out.P50, out.P95, out.P99 = nativeQuantile(0.50, s.nat), nativeQuantile(0.95, s.nat), nativeQuantile(0.99, s.nat)
		return out
	}
	lat := &s.lat
	if lat.empty() {
		lat = &s.clientLat
	}
	if qs, ok := lat.quantilesOK(0.50, 0.95, 0.99); ok {
		out.P50, out.P95, out.P99 = qs[0], qs[1], qs[2]
	}
	return out
}

// addNative adds a native histogram of durations: exponential ones to nat,
// custom-bucket ones (as the aggregates and NHCB producers store them) to
// the classic buckets.
func (s *fineStats) addNative(h *histogram.FloatHistogram) {
	if h.UsesCustomBuckets() {
		s.lat.addNative(h)
		return
	}
	if s.nat == nil {
		s.nat = h.Copy()
		return
	}
	s.nat = addHistogram(s.nat, h)
}

// nativeComplete reports whether nat holds every request the classic
// buckets hold (all flows summed into s sent native histograms), so its
// quantiles describe all of them.
func (s *fineStats) nativeComplete() bool {
	if s.nat == nil || s.nat.Count <= 0 {
		return false
	}
	classic := 0.0
	if n := len(s.lat.counts); n > 0 {
		classic = s.lat.counts[n-1]
	}
	return s.nat.Count >= classic*(1-1e-9)
}

// stats are the graph's form of s: milliseconds, 0 for what is unknown.
func (s Signals) stats() Stats {
	out := Stats{RPS: clean(s.RPS), BytesPerSec: clean(s.BytesPerSec), ErrorRate: clean(s.ErrorRate)}
	out.P50Ms = clean(s.P50 * 1000)
	out.P95Ms = clean(s.P95 * 1000)
	out.P99Ms = clean(s.P99 * 1000)
	return out
}

func clean(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}

type thresholds struct{ degraded, failing float64 }

func (t thresholds) health(s Stats) string {
	switch {
	case s.RPS <= 0:
		return HealthNoData
	case s.ErrorRate > t.failing:
		return HealthFailing
	case s.ErrorRate >= t.degraded:
		return HealthDegraded
	default:
		return HealthHealthy
	}
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortGraph(g *Graph) {
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool { return g.Edges[i].ID < g.Edges[j].ID })
}

// errBadParam is a request parameter error (HTTP 400).
type errBadParam struct{ param, msg string }

func (e *errBadParam) Error() string { return fmt.Sprintf("invalid parameter %q: %s", e.param, e.msg) }

func badParam(param, format string, args ...any) error {
	return &errBadParam{param, fmt.Sprintf(format, args...)}
}

func isBadParam(err error) bool {
	var e *errBadParam
	return errors.As(err, &e)
}

// parseView checks a view name ("" means service).
func parseView(s string) (string, error) {
	switch strings.TrimSpace(s) {
	case "", ViewService:
		return ViewService, nil
	case ViewVersion:
		return ViewVersion, nil
	}
	return "", badParam("view", "%q: want service or version", s)
}
