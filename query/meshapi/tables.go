package meshapi

import (
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
}

func statsOf(r red.Row) Stats {
	return Stats{
		RPS:         Number(r.RPS),
		Requests:    Number(r.Requests),
		SuccessRate: Number(r.SuccessRate),
		ErrorRate:   Number(1 - r.SuccessRate),
		P50Ms:       ms(r.P50),
		P95Ms:       ms(r.P95),
		P99Ms:       ms(r.P99),
		SeenBy:      r.Direction,
	}
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
	At       time.Time    `json:"at"`
	Window   string       `json:"window"`
	Services []ServiceRow `json:"services"`
}

// RouteRow is one route of GET /api/mesh/routes.
type RouteRow struct {
	Service string `json:"service"`
	Route   string `json:"route"`
	Stats
}

// RoutesResponse is the answer of GET /api/mesh/routes.
type RoutesResponse struct {
	At     time.Time  `json:"at"`
	Window string     `json:"window"`
	Routes []RouteRow `json:"routes"`
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
	At       time.Time    `json:"at"`
	Window   string       `json:"window"`
	Versions []VersionRow `json:"versions"`
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
	Edges  []EdgeRow `json:"edges"`
}

type tableParams struct {
	at     time.Time
	window time.Duration
	match  map[string]string
}

func (a *API) tableParams(r *http.Request, filters map[string]string) (tableParams, error) {
	var p tableParams
	var err error
	if p.window, err = window(r); err != nil {
		return p, err
	}
	if p.at, err = timeParam(r, "at", a.opts.Now()); err != nil {
		return p, err
	}
	p.match = map[string]string{}
	for param, label := range filters {
		if v := r.FormValue(param); v != "" {
			p.match[label] = v
		}
	}
	return p, nil
}

func (a *API) services(r *http.Request) (any, error) {
	p, err := a.tableParams(r, map[string]string{"service": "destination_service"})
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	var proxies []red.Proxy
	var perr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		proxies, perr = a.red.Proxies(ctx, a.opts.ProxyWindow, p.at)
	}()
	rows, err := a.red.Table(ctx, []string{"destination_service"}, p.match, p.window, p.at)
	<-done
	if err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	modes := red.Modes(proxies, func(p red.Proxy) string { return p.Service })
	versions := map[string][]string{}
	for _, px := range proxies {
		if !slices.Contains(versions[px.Service], px.Version) {
			versions[px.Service] = append(versions[px.Service], px.Version)
		}
	}
	out := ServicesResponse{At: p.at.UTC(), Window: red.Range(p.window), Services: []ServiceRow{}}
	seen := map[string]bool{}
	for _, row := range rows {
		svc := row.Labels["destination_service"]
		seen[svc] = true
		out.Services = append(out.Services, serviceRow(svc, modes, versions, statsOf(row)))
	}
	want := p.match["destination_service"]
	for svc := range modes {
		if !seen[svc] && (want == "" || want == svc) {
			out.Services = append(out.Services, serviceRow(svc, modes, versions, statsOf(noData())))
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
	p, err := a.tableParams(r, map[string]string{"service": "destination_service"})
	if err != nil {
		return nil, err
	}
	rows, err := a.red.Table(r.Context(), []string{"destination_service", "route"}, p.match, p.window, p.at)
	if err != nil {
		return nil, err
	}
	out := RoutesResponse{At: p.at.UTC(), Window: red.Range(p.window), Routes: []RouteRow{}}
	for _, row := range rows {
		out.Routes = append(out.Routes, RouteRow{Service: row.Labels["destination_service"], Route: row.Labels["route"], Stats: statsOf(row)})
	}
	return out, nil
}

func (a *API) versions(r *http.Request) (any, error) {
	p, err := a.tableParams(r, map[string]string{"service": "destination_service"})
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	rows, err := a.red.Table(ctx, []string{"destination_service", "destination_version"}, p.match, p.window, p.at)
	if err != nil {
		return nil, err
	}
	proxies, err := a.red.Proxies(ctx, a.opts.ProxyWindow, p.at)
	if err != nil {
		return nil, err
	}
	modes := red.Modes(proxies, func(p red.Proxy) string { return p.Service + "@" + p.Version })
	out := VersionsResponse{At: p.at.UTC(), Window: red.Range(p.window), Versions: []VersionRow{}}
	for _, row := range rows {
		svc, ver := row.Labels["destination_service"], row.Labels["destination_version"]
		mode, ok := modes[svc+"@"+ver]
		if !ok {
			mode = topology.ModeNone
		}
		out.Versions = append(out.Versions, VersionRow{Service: svc, Version: ver, Mode: mode, Stats: statsOf(row)})
	}
	return out, nil
}

func (a *API) edges(r *http.Request) (any, error) {
	p, err := a.tableParams(r, map[string]string{"source": "source_service", "destination": "destination_service"})
	if err != nil {
		return nil, err
	}
	rows, err := a.red.Table(r.Context(), []string{"source_service", "destination_service"}, p.match, p.window, p.at)
	if err != nil {
		return nil, err
	}
	out := EdgesResponse{At: p.at.UTC(), Window: red.Range(p.window), Edges: []EdgeRow{}}
	for _, row := range rows {
		out.Edges = append(out.Edges, EdgeRow{Source: row.Labels["source_service"], Destination: row.Labels["destination_service"], Stats: statsOf(row)})
	}
	return out, nil
}
