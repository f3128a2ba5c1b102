package rollout

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/control/rollout/judge"
)

// Metrics evaluates PromQL over the golden metrics: query/red.Source, the
// shared RED path.
type Metrics interface {
	Instant(ctx context.Context, q string, ts time.Time) (promql.Vector, error)
}

// Traces is what the controller reads from the trace store.
type Traces interface {
	tracestore.Searcher
	tracestore.TraceReader
}

// MaxTraceSamples caps the latency samples read from the trace store per
// version and interval.
const MaxTraceSamples = 2000

// traceCoverage is the share of an interval's requests the trace store
// must hold for its latencies to be used; below it (sampled tracing) the
// histogram buckets are.
const traceCoverage = 0.8

// Collector gathers one interval's samples of two versions.
type Collector struct {
	Metrics Metrics
	Traces  Traces // nil: histogram only
}

func promLabel(v string) string { return strconv.Quote(v) }

func promRange(d time.Duration) string {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return fmt.Sprintf("%dms", ms)
}

// Collect returns the canary's and the stable version's samples for the
// interval (start, end] and the latency source used.
func (c Collector) Collect(ctx context.Context, service, canary, stable string, start, end time.Time) (judge.Sample, judge.Sample, string, error) {
	var cs, ss judge.Sample
	sel := fmt.Sprintf(`direction="inbound",destination_service=%s,destination_version=~%s`, promLabel(service),
		promLabel(regexpQuote(canary)+"|"+regexpQuote(stable)))
	window := promRange(end.Sub(start))
	v, err := c.Metrics.Instant(ctx, fmt.Sprintf(`sum by (destination_version, outcome) (increase(mesh_requests_total{%s}[%s]))`, sel, window), end)
	if err != nil {
		return cs, ss, "", fmt.Errorf("request counts: %w", err)
	}
	for _, smp := range v {
		n := uint64(math.Round(smp.F))
		s := pick(smp.Metric.Get("destination_version"), canary, &cs, &ss)
		if s == nil {
			continue
		}
		s.Requests += n
		if smp.Metric.Get("outcome") == "failure" {
			s.Errors += n
		}
	}
	if c.Traces != nil {
		cl, err1 := c.traceLatencies(ctx, service, canary, start, end)
		sl, err2 := c.traceLatencies(ctx, service, stable, start, end)
		if err1 == nil && err2 == nil && covered(len(cl), cs.Requests) && covered(len(sl), ss.Requests) {
			cs.Latencies, ss.Latencies = cl, sl
			return cs, ss, judge.SourceTraces, nil
		}
	}
	v, err = c.Metrics.Instant(ctx, fmt.Sprintf(`sum by (destination_version, le) (increase(mesh_request_duration_seconds_bucket{%s}[%s]))`, sel, window), end)
	if err != nil {
		return cs, ss, "", fmt.Errorf("latency buckets: %w", err)
	}
	cum := map[string]map[float64]float64{}
	for _, smp := range v {
		ver := smp.Metric.Get("destination_version")
		le, err := strconv.ParseFloat(smp.Metric.Get("le"), 64)
		if err != nil {
			continue
		}
		if cum[ver] == nil {
			cum[ver] = map[float64]float64{}
		}
		cum[ver][le] = smp.F
	}
	cs.Buckets, ss.Buckets = decumulate(cum[canary]), decumulate(cum[stable])
	return cs, ss, judge.SourceHistogram, nil
}

func covered(samples int, requests uint64) bool {
	if samples == 0 {
		return false
	}
	return samples >= MaxTraceSamples || float64(samples) >= traceCoverage*float64(requests)
}

func pick(version, canary string, cs, ss *judge.Sample) *judge.Sample {
	switch {
	case version == canary:
		return cs
	case version != "":
		return ss
	}
	return nil
}

// decumulate turns cumulative bucket counts into counts per bucket.
func decumulate(cum map[float64]float64) map[float64]uint64 {
	if len(cum) == 0 {
		return nil
	}
	bounds := make([]float64, 0, len(cum))
	for le := range cum {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	out := map[float64]uint64{}
	prev := 0.0
	for _, le := range bounds {
		c := cum[le]
		if d := math.Round(c - prev); d > 0 {
			out[le] = uint64(d)
		}
		prev = math.Max(prev, c)
	}
	return out
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// traceLatencies reads the durations of the service's inbound SERVER spans
// of version in (start, end], at most MaxTraceSamples.
func (c Collector) traceLatencies(ctx context.Context, service, version string, start, end time.Time) ([]float64, error) {
	refs, err := c.Traces.Search(ctx, tracestore.Query{
		Service: service,
		Attrs:   map[string]string{"service.version": version, "mesh.direction": "inbound"},
		Start:   start, End: end, Limit: MaxTraceSamples,
	})
	if err != nil {
		return nil, fmt.Errorf("trace search: %w", err)
	}
	out := make([]float64, 0, len(refs))
	for _, ref := range refs {
		sp, err := c.Traces.Trace(ctx, ref.TraceID)
		if err != nil {
			continue // evicted between search and read
		}
		for i := range sp {
			s := &sp[i]
			if s.Service != service || s.Kind != spans.KindServer {
				continue
			}
			if a, ok := s.Attr("service.version"); !ok || a.String() != version {
				continue
			}
			if t := s.Start(); t.Before(start) || t.After(end) {
				continue
			}
			out = append(out, s.Duration().Seconds())
		}
	}
	return out, nil
}
