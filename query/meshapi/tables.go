package meshapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/meshscope/meshscope/query/red"
	"github.com/meshscope/meshscope/topology"
)

// Stats are the RED signals of one table row over the window.
type Stats struct {
	RPS         Number `json:"rps"`          // requests per second
	Requests    Number `json:"requests"`     // requests in the window
	SuccessRate Number `json:"success_rate"` // 0..1; null without requests
	ErrorRate   Number `json:"error_rate"`   // 0..1; null without requests
	P50Ms       Number `json:"p50_ms"`       // null when unknown
	P95Ms       Number `json:"p95_ms"`
	P99Ms       Number `json:"p99_ms"`
	SeenBy      string `json:"seen_by"` // "inbound" (callee's proxy) or "outbound" (caller's proxy)
	// MTLSFraction is the share (0..1) of the requests over mesh mTLS;
	// null when no proxy reported the flow (the graph edge's mtls_fraction).
	MTLSFraction Number `json:"mtls_fraction"`
}

// statsOf converts the engine's signals of one row; error and success
// rates are the graph's error_rate and its complement.
func statsOf(r topology.Row) Stats {
	return Stats{
		RPS:          Number(r.RPS),
		Requests:     Number(r.Requests),
		SuccessRate:  Number(1 - r.ErrorRate),
		ErrorRate:    Number(r.ErrorRate),
		P50Ms:        ms(r.P50),
		P95Ms:        ms(r.P95),
		P99Ms:        ms(r.P99),
		SeenBy:       r.SeenBy,
		MTLSFraction: Number(r.MTLS),
	}
}

// noData are the stats of a service without requests in the window.
func noData() Stats {
	nan := Number(math.NaN())
	return Stats{SuccessRate: nan, ErrorRate: nan, P50Ms: nan, P95Ms: nan, P99Ms: nan, MTLSFraction: nan}
}

// ServiceRow is one service of GET /api/mesh/services.
type ServiceRow struct {
	Service  string   `json:"service"`
	Mode     string   `json:"mode"`   // observe, enforce, mixed (versions differ) or none (no proxy)
	Meshed   bool     `json:"meshed"` // a proxy of the service reported in the proxy window
	Versions []string `json:"versions,omitempty"`
	Stats
}

// ServicesResponse is the answer of GET /api/mesh/services.
type ServicesResponse struct {
	At     time.Time `json:"at"`
	Window string    `json:"window"`
	// CoveredSeconds is how many seconds of the window have data (the
	// window's length when the data reaches back past its start).
	CoveredSeconds float64      `json:"covered_seconds"`
	Services       []ServiceRow `json:"services"`
}

// RouteRow is one route of GET /api/mesh/routes.
type RouteRow struct {
	Service string `json:"service"`
	Route   string `json:"route"`
	Stats
}

// RoutesResponse is the answer of GET /api/mesh/routes.
type RoutesResponse struct {
	At     time.Time `json:"at"`
	Window string    `json:"window"`
	// CoveredSeconds is how many seconds of the window have data (the
	// window's length when the data reaches back past its start).
	CoveredSeconds float64    `json:"covered_seconds"`
	Routes         []RouteRow `json:"routes"`
}

// VersionRow is one service version of GET /api/mesh/versions.
type VersionRow struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Mode    string `json:"mode"`
	Stats
}

// VersionsResponse is the answer of GET /api/mesh/versions.
type VersionsResponse struct {
	At     time.Time `json:"at"`
	Window string    `json:"window"`
	// CoveredSeconds is how many seconds of the window have data (the
	// window's length when the data reaches back past its start).
	CoveredSeconds float64      `json:"covered_seconds"`
	Versions       []VersionRow `json:"versions"`
}

// EdgeRow is one caller→callee pair of GET /api/mesh/edges.
type EdgeRow struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Stats
}

// EdgesResponse is the answer of GET /api/mesh/edges.
type EdgesResponse struct {
	At     time.Time `json:"at"`
	Window string    `json:"window"`
	// CoveredSeconds is how many seconds of the window have data (the
	// window's length when the data reaches back past its start).
	CoveredSeconds float64   `json:"covered_seconds"`
	Edges          []EdgeRow `json:"edges"`
}

type tableParams struct {
	at     time.Time
	window time.Duration
}

// maxWindow bounds the tables' window (as the graph's max_window default).
const maxWindow = 7 * 24 * time.Hour

func (a *API) tableParams(r *http.Request) (tableParams, error) {
	var p tableParams
	var err error
	if p.window, err = window(r); err != nil {
		return p, err
	}
	if p.window > maxWindow {
		return p, badRequest("invalid parameter \"window\": %q is longer than %s", r.FormValue("window"), red.Range(maxWindow))
	}
	if p.at, err = timeParam(r, "at", a.opts.Now()); err != nil {
		return p, err
	}
	return p, nil
}

// snapshot computes the RED signals of the request's window.
func (a *API) snapshot(r *http.Request) (*topology.RED, error) {
	p, err := a.tableParams(r)
	if err != nil {
		return nil, err
	}
	if a.tables == nil {
		return nil, &httpError{http.StatusServiceUnavailable, errors.New("no RED engine is configured")}
	}
	snap, err := a.tables.RED(r.Context(), p.at, p.window)
	if err != nil {
		return nil, fmt.Errorf("computing RED signals: %w", err)
	}
	return snap, nil
}

// keep reports whether a row's value passes a filter parameter.
func keep(r *http.Request, param, value string) bool {
	f := r.FormValue(param)
	return f == "" || f == value
}

func (a *API) services(r *http.Request) (any, error) {
	snap, err := a.snapshot(r)
	if err != nil {
		return nil, err
	}
	proxies, err := a.red.Proxies(r.Context(), a.opts.ProxyWindow, snap.At)
	if err != nil {
		return nil, err
	}
	modes := red.Modes(proxies, func(p red.Proxy) string { return p.Service })
	versions := map[string][]string{}
	for _, px := range proxies {
		if !slices.Contains(versions[px.Service], px.Version) {
			versions[px.Service] = append(versions[px.Service], px.Version)
		}
	}
	out := ServicesResponse{At: snap.At.UTC(), Window: red.Range(snap.Window), CoveredSeconds: snap.CoveredSeconds, Services: []ServiceRow{}}
	seen := map[string]bool{}
	for _, row := range snap.Services() {
		if !keep(r, "service", row.Service) {
			continue
		}
		seen[row.Service] = true
		out.Services = append(out.Services, serviceRow(row.Service, modes, versions, statsOf(row)))
	}
	for svc := range modes {
		if !seen[svc] && keep(r, "service", svc) {
			out.Services = append(out.Services, serviceRow(svc, modes, versions, noData()))
		}
	}
	sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Service < out.Services[j].Service })
	return out, nil
}

func serviceRow(svc string, modes map[string]string, versions map[string][]string, st Stats) ServiceRow {
	mode, meshed := modes[svc]
	if !meshed {
		mode = topology.ModeNone
	}
	v := slices.Clone(versions[svc])
	slices.Sort(v)
	return ServiceRow{Service: svc, Mode: mode, Meshed: meshed, Versions: v, Stats: st}
}

func (a *API) routes(r *http.Request) (any, error) {
	snap, err := a.snapshot(r)
	if err != nil {
		return nil, err
	}
	out := RoutesResponse{At: snap.At.UTC(), Window: red.Range(snap.Window), CoveredSeconds: snap.CoveredSeconds, Routes: []RouteRow{}}
	for _, row := range snap.RoutesOf(r.FormValue("source"), r.FormValue("version")) {
		if keep(r, "service", row.Service) {
			out.Routes = append(out.Routes, RouteRow{Service: row.Service, Route: row.Route, Stats: statsOf(row)})
		}
	}
	return out, nil
}

func (a *API) versions(r *http.Request) (any, error) {
	snap, err := a.snapshot(r)
	if err != nil {
		return nil, err
	}
	proxies, err := a.red.Proxies(r.Context(), a.opts.ProxyWindow, snap.At)
	if err != nil {
		return nil, err
	}
	modes := red.Modes(proxies, func(p red.Proxy) string { return p.Service + "@" + p.Version })
	out := VersionsResponse{At: snap.At.UTC(), Window: red.Range(snap.Window), CoveredSeconds: snap.CoveredSeconds, Versions: []VersionRow{}}
	for _, row := range snap.Versions() {
		if !keep(r, "service", row.Service) {
			continue
		}
		mode, ok := modes[row.Service+"@"+row.Version]
		if !ok {
			mode = topology.ModeNone
		}
		out.Versions = append(out.Versions, VersionRow{Service: row.Service, Version: row.Version, Mode: mode, Stats: statsOf(row)})
	}
	return out, nil
}

func (a *API) edges(r *http.Request) (any, error) {
	snap, err := a.snapshot(r)
	if err != nil {
		return nil, err
	}
	out := EdgesResponse{At: snap.At.UTC(), Window: red.Range(snap.Window), CoveredSeconds: snap.CoveredSeconds, Edges: []EdgeRow{}}
	for _, row := range snap.Edges() {
		if keep(r, "source", row.Source) && keep(r, "destination", row.Service) {
			out.Edges = append(out.Edges, EdgeRow{Source: row.Source, Destination: row.Service, Stats: statsOf(row)})
		}
	}
	return out, nil
}
