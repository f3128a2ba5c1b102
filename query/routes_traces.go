package query

import (
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/jaegerapi"
	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/query/red"
)

// addTraceAndMeshRoutes adds the Jaeger-compatible and native endpoints.
// The native tables and the Jaeger dependencies read the RED engine (nil:
// the tables answer 503, the dependencies an empty list).
func (a *API) addTraceAndMeshRoutes(engine promql.QueryEngine, q storage.Queryable, traces tracestore.Reader, engineRED red.Snapshots) {
	src := red.Source{Engine: engine, Queryable: q}
	var deps jaegerapi.DependencySource
	var tables meshapi.REDSource
	if engineRED != nil {
		deps = red.Dependencies{RED: engineRED}
		tables = engineRED
	}
	jaeger := jaegerapi.New(jaegerapi.Options{MaxLimit: a.cfg.MaxTraces, Timeout: a.cfg.Timeout, Logger: a.logger}, traces, deps)
	a.routes = append(a.routes, jaeger.Routes()...)
	a.routes = append(a.routes, jaeger.V3Routes()...)
	mesh := meshapi.New(meshapi.Options{Timeout: a.cfg.Timeout, MaxTraces: a.cfg.MaxTraces, ProxyWindow: a.cfg.ProxyWindow, Logger: a.logger}, src, tables, traces)
	a.routes = append(a.routes, mesh.Routes()...)
}
