// Package red connects the query APIs to the mesh's one RED engine
// (topology.RED: the per-edge and per-route aggregates behind the graph) and
// reads the proxies' self-description (meshscope_proxy_info) with PromQL.
// The native tables, the CLI (which reads them), the graph and the Jaeger
// dependencies endpoint therefore show the same figures.
package red

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/topology"
)

// ProxyInfo is the metric each proxy describes itself with.
const ProxyInfo = "meshscope_proxy_info"

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

// Range renders a duration as a PromQL range ("1m", "30s", "1500ms").
func Range(d time.Duration) string { return model.Duration(d).String() }

// Snapshots computes the RED signals of a window: topology.Topology, the
// one RED engine behind the graph, the native tables and the dependencies.
type Snapshots interface {
	RED(ctx context.Context, at time.Time, window time.Duration) (*topology.RED, error)
}

// Dependency is a caller→callee pair and its call count over a window.
type Dependency struct {
	Parent, Child string
	CallCount     uint64
}

// Dependencies lists the service dependencies of a window from the RED
// engine: the graph's service-view edges (proxy-reported pairs, and pairs
// only span pairing saw), with their requests as call counts.
type Dependencies struct {
	RED Snapshots
}

// Dependencies returns the dependencies seen in the lookback window ending
// at end, sorted by parent then child.
func (d Dependencies) Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]Dependency, error) {
	if lookback <= 0 {
		return nil, errors.New("lookback must be positive")
	}
	r, err := d.RED.RED(ctx, end, lookback)
	if err != nil {
		return nil, err
	}
	rows := r.Edges()
	deps := make([]Dependency, 0, len(rows))
	for _, e := range rows {
		if e.Source == "" || e.Service == "" {
			continue
		}
		deps = append(deps, Dependency{Parent: e.Source, Child: e.Service, CallCount: uint64(math.Round(e.Requests))})
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
