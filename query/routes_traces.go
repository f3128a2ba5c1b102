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
func (a *API) addTraceAndMeshRoutes(engine promql.QueryEngine, q storage.Queryable, traces tracestore.Reader) {
	src := red.Source{Engine: engine, Queryable: q}
	jaeger := jaegerapi.New(jaegerapi.Options{MaxLimit: a.cfg.MaxTraces, Timeout: a.cfg.Timeout, Logger: a.logger}, traces, src)
	a.routes = append(a.routes, jaeger.Routes()...)
	a.routes = append(a.routes, jaeger.V3Routes()...)
	mesh := meshapi.New(meshapi.Options{Timeout: a.cfg.Timeout, MaxTraces: a.cfg.MaxTraces, ProxyWindow: a.cfg.ProxyWindow, Logger: a.logger}, src, traces)
	a.routes = append(a.routes, mesh.Routes()...)
}
