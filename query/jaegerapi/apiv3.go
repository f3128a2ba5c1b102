package jaegerapi

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// V3Prefix is where Jaeger's api_v3 (JSON over HTTP, as Jaeger v2's query
// service serves it) is mounted: a Jaeger client's base URL
// http://HOST:PORT/jaeger serves both the classic API and api_v3.
const V3Prefix = "/jaeger/api/v3"

// WarningsAttribute is the span attribute in which Jaeger v2 carries the
// warnings of its trace adjusters in OTLP answers.
const WarningsAttribute = "@jaeger@warnings"

// DefaultSearchDepth is api_v3's default number of traces of a search.
const DefaultSearchDepth = 100

// V3Routes lists the api_v3 endpoints.
func (a *API) V3Routes() []Route {
	return []Route{
		{Pattern: "GET " + V3Prefix + "/services", Name: "jaeger_v3_services", Handler: a.v3Handler(a.v3Services)},
		{Pattern: "GET " + V3Prefix + "/operations", Name: "jaeger_v3_operations", Handler: a.v3Handler(a.v3Operations)},
		{Pattern: "GET " + V3Prefix + "/traces", Name: "jaeger_v3_search", Handler: a.v3Handler(a.v3Search)},
		{Pattern: "GET " + V3Prefix + "/traces/{trace_id}", Name: "jaeger_v3_trace", Handler: a.v3Handler(a.v3Trace)},
	}
}

// V3Error is api_v3's error answer (grpc-gateway's shape).
type V3Error struct {
	Error V3ErrorDetails `json:"error"`
}

// V3ErrorDetails describes the error.
type V3ErrorDetails struct {
	HTTPCode int    `json:"httpCode,omitempty"`
	Message  string `json:"message,omitempty"`
}

// V3Services is the answer of /api/v3/services.
type V3Services struct {
	Services []string `json:"services"`
}

// V3Operations is the answer of /api/v3/operations.
type V3Operations struct {
	Operations []V3Operation `json:"operations"`
}

// V3Operation is one operation.
type V3Operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

// v3Answer is either a JSON value or ready OTLP JSON bytes.
type v3Answer struct {
	value any
	raw   []byte
}

func (a *API) v3Handler(f func(r *http.Request) (v3Answer, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, cancel := a.withTimeout(r)
		defer cancel()
		ans, err := f(r)
		code := http.StatusOK
		body := ans.raw
		if err == nil && body == nil {
			body, err = json.Marshal(ans.value)
		}
		if err != nil {
			code = errorCode(err)
			if code == http.StatusInternalServerError {
				a.logger.Error("Jaeger api_v3 request failed", "path", r.URL.Path, "err", err)
			}
			body, _ = json.Marshal(V3Error{Error: V3ErrorDetails{HTTPCode: code, Message: err.Error()}})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	})
}

func (a *API) v3Services(r *http.Request) (v3Answer, error) {
	if a.traces == nil {
		return v3Answer{}, errNoStore
	}
	svcs, err := a.traces.Services(r.Context())
	if err != nil {
		return v3Answer{}, fmt.Errorf("listing services: %w", err)
	}
	if svcs == nil {
		svcs = []string{}
	}
	slices.Sort(svcs)
	return v3Answer{value: V3Services{Services: svcs}}, nil
}

// v3Param returns the canonical (camelCase) parameter or its deprecated
// snake_case alias, and the name it was found under.
func v3Param(q url.Values, canonical, deprecated string) (value, name string) {
	if v := q.Get(canonical); v != "" {
		return v, canonical
	}
	return q.Get(deprecated), deprecated
}

func (a *API) v3Operations(r *http.Request) (v3Answer, error) {
	if a.traces == nil {
		return v3Answer{}, errNoStore
	}
	q := r.URL.Query()
	svc := q.Get("service")
	if svc == "" {
		return v3Answer{}, badRequest("parameter service is required")
	}
	oq := tracestore.OperationQuery{Service: svc}
	if k, name := v3Param(q, "spanKind", "span_kind"); k != "" {
		kind, err := spans.ParseKind(strings.ToLower(k))
		if err != nil {
			return v3Answer{}, badRequest("malformed parameter %s: %v", name, err)
		}
		oq.Kind = &kind
	}
	ops, err := a.traces.Operations(r.Context(), oq)
	if err != nil {
		return v3Answer{}, fmt.Errorf("listing operations of %q: %w", svc, err)
	}
	out := make([]V3Operation, 0, len(ops))
	for _, op := range ops {
		kind := SpanKind(op.Kind)
		if kind == "" {
			kind = spans.KindInternal.String() // as Jaeger: no kind reads as internal
		}
		out = append(out, V3Operation{Name: op.Name, SpanKind: kind})
	}
	slices.SortFunc(out, func(x, y V3Operation) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.SpanKind, y.SpanKind))
	})
	return v3Answer{value: V3Operations{Operations: out}}, nil
}

// ParseV3Search reads api_v3's search parameters (camelCase, or the
// snake_case aliases Jaeger still accepts): query.serviceName,
// query.operationName, query.attributes (JSON object), query.startTimeMin and
// query.startTimeMax (RFC 3339, both required), query.durationMin and
// query.durationMax (Go durations), query.searchDepth or query.num_traces
// (default 100) and query.rawTraces.
func ParseV3Search(q url.Values) (tracestore.Query, bool, error) {
	var tq tracestore.Query
	tq.Service, _ = v3Param(q, "query.serviceName", "query.service_name")
	tq.Operation, _ = v3Param(q, "query.operationName", "query.operation_name")
	if s := q.Get("query.attributes"); s != "" {
		attrs := map[string]string{}
		if err := json.Unmarshal([]byte(s), &attrs); err != nil {
			return tq, false, badRequest("malformed parameter query.attributes: %v", err)
		}
		applyTags(&tq, attrs)
	}
	minS, minName := v3Param(q, "query.startTimeMin", "query.start_time_min")
	maxS, maxName := v3Param(q, "query.startTimeMax", "query.start_time_max")
	if minS == "" || maxS == "" {
		return tq, false, badRequest("query.startTimeMin and query.startTimeMax are required")
	}
	var err error
	if tq.Start, err = time.Parse(time.RFC3339Nano, minS); err != nil {
		return tq, false, badRequest("malformed parameter %s: %v", minName, err)
	}
	if tq.End, err = time.Parse(time.RFC3339Nano, maxS); err != nil {
		return tq, false, badRequest("malformed parameter %s: %v", maxName, err)
	}
	if !tq.Start.Before(tq.End) {
		return tq, false, badRequest("query.startTimeMin must be before query.startTimeMax")
	}
	tq.Limit = DefaultSearchDepth
	n, name := v3Param(q, "query.searchDepth", "query.search_depth")
	if n == "" {
		n, name = q.Get("query.num_traces"), "query.num_traces"
	}
	if n != "" {
		if tq.Limit, err = strconv.Atoi(n); err != nil || tq.Limit <= 0 {
			return tq, false, badRequest("malformed parameter %s: %q is not a positive integer", name, n)
		}
	}
	for _, d := range []struct {
		canonical, deprecated string
		dst                   *time.Duration
	}{
		{"query.durationMin", "query.duration_min", &tq.MinDuration},
		{"query.durationMax", "query.duration_max", &tq.MaxDuration},
	} {
		if s, name := v3Param(q, d.canonical, d.deprecated); s != "" {
			if *d.dst, err = time.ParseDuration(s); err != nil || *d.dst < 0 {
				return tq, false, badRequest("malformed parameter %s: %q is not a non-negative duration", name, s)
			}
		}
	}
	if tq.MaxDuration > 0 && tq.MaxDuration < tq.MinDuration {
		return tq, false, badRequest("query.durationMax must not be below query.durationMin")
	}
	raw := false
	if s, name := v3Param(q, "query.rawTraces", "query.raw_traces"); s != "" {
		if raw, err = strconv.ParseBool(s); err != nil {
			return tq, false, badRequest("malformed parameter %s: %v", name, err)
		}
	}
	return tq, raw, nil
}

// errNoTracesFound is api_v3's answer to an empty result (Jaeger's words).
var errNoTracesFound = &httpError{http.StatusNotFound, errors.New("No traces found")}

func (a *API) v3Search(r *http.Request) (v3Answer, error) {
	if a.traces == nil {
		return v3Answer{}, errNoStore
	}
	q, raw, err := ParseV3Search(r.URL.Query())
	if err != nil {
		return v3Answer{}, err
	}
	if a.opts.MaxLimit > 0 && q.Limit > a.opts.MaxLimit {
		q.Limit = a.opts.MaxLimit
	}
	ctx := r.Context()
	refs, err := a.traces.Search(ctx, q)
	if err != nil {
		return v3Answer{}, fmt.Errorf("searching traces: %w", err)
	}
	var traces [][]spans.Span
	for _, ref := range refs {
		ss, err := a.traces.Trace(ctx, ref.TraceID)
		if errors.Is(err, tracestore.ErrTraceNotFound) {
			continue // expired between search and fetch
		}
		if err != nil {
			return v3Answer{}, fmt.Errorf("reading trace %s: %w", ref.TraceID, err)
		}
		traces = append(traces, ss)
	}
	return otlpAnswer(traces, raw)
}

// parseV3TraceID accepts a trace ID in hex (1–32 digits) or, as Jaeger
// does, base64 (standard or URL alphabet, with or without padding).
func parseV3TraceID(s string) (spans.TraceID, error) {
	id, err := spans.ParseTraceID(s)
	if err == nil {
		return id, nil
	}
	if len(s) <= 24 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, e := enc.DecodeString(s); e == nil && len(b) == len(id) {
				copy(id[:], b)
				return id, nil
			}
		}
	}
	return id, err
}

func (a *API) v3Trace(r *http.Request) (v3Answer, error) {
	if a.traces == nil {
		return v3Answer{}, errNoStore
	}
	id, err := parseV3TraceID(r.PathValue("trace_id"))
	if err != nil || id.IsZero() {
		return v3Answer{}, badRequest("malformed parameter trace_id: %q is not a trace ID", r.PathValue("trace_id"))
	}
	q := r.URL.Query()
	for _, p := range [][2]string{{"startTime", "start_time"}, {"endTime", "end_time"}} {
		if s, name := v3Param(q, p[0], p[1]); s != "" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return v3Answer{}, badRequest("malformed parameter %s: %v", name, err)
			}
		}
	}
	raw := false
	if s, name := v3Param(q, "rawTraces", "raw_traces"); s != "" {
		if raw, err = strconv.ParseBool(s); err != nil {
			return v3Answer{}, badRequest("malformed parameter %s: %v", name, err)
		}
	}
	ss, err := a.traces.Trace(r.Context(), id)
	if err != nil && !errors.Is(err, tracestore.ErrTraceNotFound) {
		return v3Answer{}, fmt.Errorf("reading trace %s: %w", id, err)
	}
	if len(ss) == 0 {
		return v3Answer{}, errNoTracesFound
	}
	return otlpAnswer([][]spans.Span{ss}, raw)
}

// otlpAnswer renders traces as api_v3 does: {"result": TracesData} in OTLP
// JSON (hex IDs, enums as numbers, 64-bit integers as strings), the resource
// spans of every trace one after the other; 404 "No traces found" when there
// is none. Unless raw, each span carries its warnings in WarningsAttribute.
func otlpAnswer(traces [][]spans.Span, raw bool) (v3Answer, error) {
	if len(traces) == 0 {
		return v3Answer{}, errNoTracesFound
	}
	td := ptrace.NewTraces()
	for _, ss := range traces {
		appendOTLP(td, ss, raw)
	}
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		return v3Answer{}, fmt.Errorf("encoding OTLP JSON: %w", err)
	}
	out := make([]byte, 0, len(b)+12)
	out = append(out, `{"result":`...)
	out = append(out, b...)
	out = append(out, '}')
	return v3Answer{raw: out}, nil
}

// appendOTLP adds one trace's spans to td, ordered by start time, one
// ResourceSpans per service+resource and one ScopeSpans per scope, in order
// of first appearance.
func appendOTLP(td ptrace.Traces, in []spans.Span, raw bool) {
	ss := slices.Clone(in)
	slices.SortStableFunc(ss, func(a, b spans.Span) int {
		return cmp.Or(cmp.Compare(a.StartUnixNano, b.StartUnixNano), strings.Compare(a.SpanID.String(), b.SpanID.String()))
	})
	var warnings [][]string
	if !raw {
		warnings = SpanWarnings(ss)
	}
	resources := map[string]ptrace.ResourceSpans{}
	scopes := map[string]ptrace.ScopeSpans{}
	for i := range ss {
		s := &ss[i]
		rk := processKey(s)
		rs, ok := resources[rk]
		if !ok {
			rs = td.ResourceSpans().AppendEmpty()
			attrs := rs.Resource().Attributes()
			attrs.PutStr("service.name", s.Service)
			putAttrs(attrs, s.Resource)
			resources[rk] = rs
		}
		sk := rk + "\x02" + s.Scope + "\x03" + s.ScopeVersion
		sc, ok := scopes[sk]
		if !ok {
			sc = rs.ScopeSpans().AppendEmpty()
			sc.Scope().SetName(s.Scope)
			sc.Scope().SetVersion(s.ScopeVersion)
			scopes[sk] = sc
		}
		sp := sc.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(s.TraceID))
		sp.SetSpanID(pcommon.SpanID(s.SpanID))
		if !s.ParentSpanID.IsZero() {
			sp.SetParentSpanID(pcommon.SpanID(s.ParentSpanID))
		}
		sp.TraceState().FromRaw(s.TraceState)
		sp.SetName(s.Name)
		sp.SetKind(ptrace.SpanKind(s.Kind))
		sp.SetStartTimestamp(pcommon.Timestamp(s.StartUnixNano))
		sp.SetEndTimestamp(pcommon.Timestamp(s.EndUnixNano))
		sp.Status().SetCode(ptrace.StatusCode(s.StatusCode))
		sp.Status().SetMessage(s.StatusMessage)
		putAttrs(sp.Attributes(), s.Attrs)
		for _, e := range s.Events {
			ev := sp.Events().AppendEmpty()
			ev.SetTimestamp(pcommon.Timestamp(e.TimeUnixNano))
			ev.SetName(e.Name)
			putAttrs(ev.Attributes(), e.Attrs)
		}
		for _, l := range s.Links {
			ln := sp.Links().AppendEmpty()
			ln.SetTraceID(pcommon.TraceID(l.TraceID))
			ln.SetSpanID(pcommon.SpanID(l.SpanID))
			putAttrs(ln.Attributes(), l.Attrs)
		}
		if warnings != nil && len(warnings[i]) > 0 {
			w := sp.Attributes().PutEmptySlice(WarningsAttribute)
			for _, text := range warnings[i] {
				w.AppendEmpty().SetStr(text)
			}
		}
	}
}

func putAttrs(m pcommon.Map, as []spans.Attr) {
	for _, a := range as {
		switch a.Type {
		case spans.TypeInt:
			m.PutInt(a.Key, a.Int)
		case spans.TypeFloat:
			m.PutDouble(a.Key, a.Float)
		case spans.TypeBool:
			m.PutBool(a.Key, a.Bool)
		case spans.TypeBytes:
			m.PutEmptyBytes(a.Key).FromRaw([]byte(a.Str))
		default:
			m.PutStr(a.Key, a.Str)
		}
	}
}
