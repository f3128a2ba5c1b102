package meshapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

var errNoStore = &httpError{http.StatusServiceUnavailable, errors.New("no trace store is configured")}

// TraceSummary is one hit of GET /api/mesh/traces.
type TraceSummary struct {
	TraceID       string    `json:"trace_id"`
	RootService   string    `json:"root_service"`
	RootOperation string    `json:"root_operation"`
	Start         time.Time `json:"start"`
	DurationMs    Number    `json:"duration_ms"`
	SpanCount     int       `json:"span_count"`
	ErrorCount    int       `json:"error_count"`
	Services      []string  `json:"services"`
	// UnmeshedServices are the services the trace's CLIENT spans call
	// that have no span in it (spans.Span.PeerService), sorted.
	UnmeshedServices []string `json:"unmeshed_services,omitempty"`
}

// TracesResponse is the answer of GET /api/mesh/traces.
type TracesResponse struct {
	Traces []TraceSummary `json:"traces"`
}

// Trace is the answer of GET /api/mesh/traces/{id}: the summary and every
// span in tree order (each parent before its children, siblings by start).
type Trace struct {
	TraceSummary
	Spans []Span `json:"spans"`
}

// Span is one span of a native trace.
type Span struct {
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"`
	Depth         int            `json:"depth"` // 0 for roots (and spans whose parent is missing)
	Service       string         `json:"service"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	Start         time.Time      `json:"start"`
	StartOffsetMs Number         `json:"start_offset_ms"` // from the trace's start
	DurationMs    Number         `json:"duration_ms"`
	Status        string         `json:"status"` // unset, ok or error
	StatusMessage string         `json:"status_message,omitempty"`
	Attributes    map[string]any `json:"attributes"`
	Resource      map[string]any `json:"resource"`
	Scope         string         `json:"scope,omitempty"`
	Events        []Event        `json:"events,omitempty"`
	Links         []Link         `json:"links,omitempty"`
}

// Event is a span event.
type Event struct {
	Time       time.Time      `json:"time"`
	Name       string         `json:"name"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Link points at another span.
type Link struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

func attrMap(as []spans.Attr) map[string]any {
	m := make(map[string]any, len(as))
	for _, a := range as {
		switch a.Type {
		case spans.TypeInt:
			m[a.Key] = a.Int
		case spans.TypeFloat:
			m[a.Key] = a.Float
		case spans.TypeBool:
			m[a.Key] = a.Bool
		default:
			m[a.Key] = a.String() // bytes as hex
		}
	}
	return m
}

func statusName(c spans.StatusCode) string {
	switch c {
	case spans.StatusOK:
		return "ok"
	case spans.StatusError:
		return "error"
	default:
		return "unset"
	}
}

// Summarize computes the summary of a trace's spans.
func Summarize(ss []spans.Span) TraceSummary {
	var sum TraceSummary
	if len(ss) == 0 {
		return sum
	}
	ids := make(map[spans.SpanID]bool, len(ss))
	for _, s := range ss {
		ids[s.SpanID] = true
	}
	minStart, maxEnd := ss[0].StartUnixNano, ss[0].EndUnixNano
	var root *spans.Span
	svcs := map[string]bool{}
	for i := range ss {
		s := &ss[i]
		minStart = min(minStart, s.StartUnixNano)
		maxEnd = max(maxEnd, s.EndUnixNano)
		if s.IsError() {
			sum.ErrorCount++
		}
		svcs[s.Service] = true
		if s.ParentSpanID.IsZero() || !ids[s.ParentSpanID] {
			if root == nil || s.StartUnixNano < root.StartUnixNano || (s.StartUnixNano == root.StartUnixNano && s.ParentSpanID.IsZero() && !root.ParentSpanID.IsZero()) {
				root = s
			}
		}
	}
	sum.TraceID = ss[0].TraceID.String()
	if root != nil {
		sum.RootService, sum.RootOperation = root.Service, root.Name
	}
	sum.Start = time.Unix(0, minStart).UTC()
	sum.DurationMs = Number(float64(maxEnd-minStart) / 1e6)
	sum.SpanCount = len(ss)
	for s := range svcs {
		sum.Services = append(sum.Services, s)
	}
	slices.Sort(sum.Services)
	for i := range ss {
		if p := ss[i].PeerService(); p != "" && !svcs[p] && !slices.Contains(sum.UnmeshedServices, p) {
			sum.UnmeshedServices = append(sum.UnmeshedServices, p)
		}
	}
	slices.Sort(sum.UnmeshedServices)
	return sum
}

// Service kinds in GET /api/mesh/traces/services.
const (
	ServiceKindTraced   = "traced"   // the service has spans of its own
	ServiceKindUnmeshed = "unmeshed" // known only as the peer of CLIENT spans
)

// TraceService is one service trace search can ask for.
type TraceService struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // ServiceKindTraced or ServiceKindUnmeshed
}

// TraceServicesResponse is the answer of GET /api/mesh/traces/services.
type TraceServicesResponse struct {
	Services []TraceService `json:"services"`
}

// serviceInfoLister is a trace store that marks services known only as the
// peer of CLIENT spans.
type serviceInfoLister interface {
	ServiceInfos(ctx context.Context) ([]tracestore.ServiceInfo, error)
}

func (a *API) traceServices(r *http.Request) (any, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	out := TraceServicesResponse{Services: []TraceService{}}
	if l, ok := a.traces.(serviceInfoLister); ok {
		infos, err := l.ServiceInfos(r.Context())
		if err != nil {
			return nil, fmt.Errorf("listing trace services: %w", err)
		}
		for _, in := range infos {
			kind := ServiceKindTraced
			if in.Unmeshed {
				kind = ServiceKindUnmeshed
			}
			out.Services = append(out.Services, TraceService{Name: in.Name, Kind: kind})
		}
		return out, nil
	}
	names, err := a.traces.Services(r.Context())
	if err != nil {
		return nil, fmt.Errorf("listing trace services: %w", err)
	}
	for _, n := range names {
		out.Services = append(out.Services, TraceService{Name: n, Kind: ServiceKindTraced})
	}
	return out, nil
}

// ConvertTrace builds the native trace from its spans.
func ConvertTrace(ss []spans.Span) Trace {
	t := Trace{TraceSummary: Summarize(ss), Spans: make([]Span, 0, len(ss))}
	if len(ss) == 0 {
		return t
	}
	start := t.Start.UnixNano()
	byStart := slices.Clone(ss)
	slices.SortStableFunc(byStart, func(a, b spans.Span) int {
		if c := cmp.Compare(a.StartUnixNano, b.StartUnixNano); c != 0 {
			return c
		}
		return strings.Compare(a.SpanID.String(), b.SpanID.String())
	})
	ids := map[spans.SpanID]bool{}
	children := map[spans.SpanID][]int{}
	var roots []int
	for _, s := range byStart {
		ids[s.SpanID] = true
	}
	for i, s := range byStart {
		if s.ParentSpanID.IsZero() || !ids[s.ParentSpanID] || s.ParentSpanID == s.SpanID {
			roots = append(roots, i)
			continue
		}
		children[s.ParentSpanID] = append(children[s.ParentSpanID], i)
	}
	visited := make([]bool, len(byStart))
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if visited[i] {
			return
		}
		visited[i] = true
		t.Spans = append(t.Spans, nativeSpan(&byStart[i], depth, start))
		for _, c := range children[byStart[i].SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for i := range byStart { // cycles or duplicate ids: keep every span
		if !visited[i] {
			walk(i, 0)
		}
	}
	return t
}

func nativeSpan(s *spans.Span, depth int, traceStart int64) Span {
	out := Span{
		SpanID:        s.SpanID.String(),
		Depth:         depth,
		Service:       s.Service,
		Name:          s.Name,
		Kind:          s.Kind.String(),
		Start:         s.Start().UTC(),
		StartOffsetMs: Number(float64(s.StartUnixNano-traceStart) / 1e6),
		DurationMs:    Number(float64(s.Duration()) / 1e6),
		Status:        statusName(s.StatusCode),
		StatusMessage: s.StatusMessage,
		Attributes:    attrMap(s.Attrs),
		Resource:      attrMap(s.Resource),
		Scope:         s.Scope,
	}
	if !s.ParentSpanID.IsZero() {
		out.ParentSpanID = s.ParentSpanID.String()
	}
	for _, e := range s.Events {
		ev := Event{Time: time.Unix(0, e.TimeUnixNano).UTC(), Name: e.Name}
		if len(e.Attrs) > 0 {
			ev.Attributes = attrMap(e.Attrs)
		}
		out.Events = append(out.Events, ev)
	}
	for _, l := range s.Links {
		lk := Link{TraceID: l.TraceID.String(), SpanID: l.SpanID.String()}
		if len(l.Attrs) > 0 {
			lk.Attributes = attrMap(l.Attrs)
		}
		out.Links = append(out.Links, lk)
	}
	return out
}

// ParseTraceSearch reads the native search parameters: service, operation,
// attr=key=value (repeatable; all must hold on one span), status
// (error|ok), min_duration and max_duration (Go durations, "250ms"), start
// and end (RFC 3339 or Unix seconds; default the last `lookback`, 1h),
// sort (newest, longest or errors; applied by the store to every match in
// the range before the limit) and limit (default 20).
func ParseTraceSearch(r *http.Request, now time.Time) (tracestore.Query, error) {
	q := tracestore.Query{Service: r.FormValue("service"), Operation: r.FormValue("operation"), Limit: DefaultTraceLimit}
	for _, kv := range r.Form["attr"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return q, badRequest("invalid parameter \"attr\": want key=value, got %q", kv)
		}
		if q.Attrs == nil {
			q.Attrs = map[string]string{}
		}
		q.Attrs[k] = v
	}
	switch s := r.FormValue("status"); s {
	case "", "any":
	case "error":
		q.Status = tracestore.StatusError
	case "ok":
		q.Status = tracestore.StatusOK
	default:
		return q, badRequest("invalid parameter \"status\": want error, ok or any, got %q", s)
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"min_duration", &q.MinDuration}, {"max_duration", &q.MaxDuration}} {
		if s := r.FormValue(d.name); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v < 0 {
				return q, badRequest("invalid parameter %q: want a non-negative duration like 250ms, got %q", d.name, s)
			}
			*d.dst = v
		}
	}
	if q.MaxDuration > 0 && q.MaxDuration < q.MinDuration {
		return q, badRequest("invalid parameter \"max_duration\": smaller than min_duration")
	}
	end, err := timeParam(r, "end", now)
	if err != nil {
		return q, err
	}
	lookback := DefaultLookback
	if s := r.FormValue("lookback"); s != "" {
		if lookback, err = time.ParseDuration(s); err != nil || lookback <= 0 {
			return q, badRequest("invalid parameter \"lookback\": want a positive duration like 1h, got %q", s)
		}
	}
	start, err := timeParam(r, "start", end.Add(-lookback))
	if err != nil {
		return q, err
	}
	if end.Before(start) {
		return q, badRequest("invalid parameter \"end\": before start")
	}
	q.Start, q.End = start, end
	if q.Sort, err = tracestore.ParseSortOrder(r.FormValue("sort")); err != nil {
		return q, badRequest("invalid parameter \"sort\": want newest, longest or errors, got %q", r.FormValue("sort"))
	}
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return q, badRequest("invalid parameter \"limit\": want a positive integer, got %q", s)
		}
		q.Limit = n
	}
	return q, nil
}

func (a *API) searchTraces(r *http.Request) (any, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("parsing query: %v", err)
	}
	q, err := ParseTraceSearch(r, a.opts.Now())
	if err != nil {
		return nil, err
	}
	if a.opts.MaxTraces > 0 && q.Limit > a.opts.MaxTraces {
		q.Limit = a.opts.MaxTraces
	}
	ctx := r.Context()
	refs, err := a.traces.Search(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("searching traces: %w", err)
	}
	out := TracesResponse{Traces: []TraceSummary{}}
	for _, ref := range refs {
		ss, err := a.traces.Trace(ctx, ref.TraceID)
		if errors.Is(err, tracestore.ErrTraceNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading trace %s: %w", ref.TraceID, err)
		}
		out.Traces = append(out.Traces, Summarize(ss))
	}
	return out, nil
}

func (a *API) trace(r *http.Request) (any, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	id, err := spans.ParseTraceID(r.PathValue("id"))
	if err != nil || id.IsZero() {
		return nil, badRequest("invalid trace id %q: want 1 to 32 hex digits", r.PathValue("id"))
	}
	ss, err := a.traces.Trace(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", id, err)
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("trace %s: %w", id, tracestore.ErrTraceNotFound)
	}
	return ConvertTrace(ss), nil
}
