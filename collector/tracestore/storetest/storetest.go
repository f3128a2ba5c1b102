package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// Opener returns a fresh, empty store. The suite closes it at the end of
// the case (stores should tolerate Close being called by the suite only).
type Opener func(t *testing.T) tracestore.Store

// Options tunes the suite for a backend.
type Options struct {
	// Reopen, if set, closes s and opens the same store again (same data
	// directory, same database). It enables the durability cases: acknowledged
	// spans must be readable after a clean reopen.
	Reopen func(t *testing.T, s tracestore.Store) tracestore.Store
}

// Run runs every conformance case against stores made by open.
func Run(t *testing.T, open Opener) { RunOptions(t, open, Options{}) }

// RunOptions runs every conformance case, including the optional ones that
// opts enables.
func RunOptions(t *testing.T, open Opener, opts Options) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s tracestore.Store)
	}{
		{"TraceByIDRoundTrip", testTraceByID},
		{"TraceNotFound", testTraceNotFound},
		{"TraceAssembledAcrossBatchesMinutesApart", testTraceAcrossBatches},
		{"TypedAttributesEventsLinks", testTypedRoundTrip},
		{"EmptyBatch", testEmptyBatch},
		{"SearchByService", testSearchService},
		{"SearchByOperation", testSearchOperation},
		{"SearchBySpanAttribute", testSearchSpanAttr},
		{"SearchByResourceAttribute", testSearchResourceAttr},
		{"SearchByTypedAttributeAsText", testSearchTypedAttr},
		{"SearchConditionsHoldForOneSpan", testSearchSameSpan},
		{"SearchByDuration", testSearchDuration},
		{"SearchByStatus", testSearchStatus},
		{"SearchByTimeRange", testSearchTimeRange},
		{"SearchLimitMostRecentFirst", testSearchLimitOrder},
		{"SearchNoMatch", testSearchNoMatch},
		{"SearchSortLongestOverWholeRange", testSortLongest},
		{"SearchSortErrors", testSortErrors},
		{"SearchSortNewestIsDefault", testSortNewestDefault},
		{"Services", testServices},
		{"PeerServicesListedAndSearchable", testPeerServices},
		{"Operations", testOperations},
	}
	if opts.Reopen != nil {
		cases = append(cases, struct {
			name string
			fn   func(t *testing.T, s tracestore.Store)
		}{"SurvivesReopen", func(t *testing.T, s tracestore.Store) { testReopen(t, s, opts.Reopen) }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = s.Close()
				}
			})
			// testReopen takes over ownership of closing.
			if c.name == "SurvivesReopen" {
				closed = true
			}
			c.fn(t, s)
		})
	}
}

// base is the time origin of every case: an hour ago, so stores with
// age-based retention keep everything and time ranges stay in the past.
func base() time.Time { return time.Now().Add(-time.Hour).Truncate(time.Millisecond) }

func tid(n int) spans.TraceID {
	var id spans.TraceID
	id[0] = 0xab
	id[14] = byte(n >> 8)
	id[15] = byte(n)
	return id
}

func sid(trace, n int) spans.SpanID {
	var id spans.SpanID
	id[0] = 0xcd
	id[5] = byte(trace)
	id[6] = byte(n >> 8)
	id[7] = byte(n)
	return id
}

// mk builds a plain span: service svc, operation op, starting at start and
// lasting d.
func mk(trace, n int, svc, op string, start time.Time, d time.Duration) spans.Span {
	return spans.Span{
		TraceID:       tid(trace),
		SpanID:        sid(trace, n),
		Service:       svc,
		Name:          op,
		Kind:          spans.KindServer,
		StartUnixNano: start.UnixNano(),
		EndUnixNano:   start.Add(d).UnixNano(),
		Attrs:         []spans.Attr{spans.StringAttr("http.method", "GET")},
		Resource:      []spans.Attr{spans.StringAttr("host.name", "node-1")},
		Scope:         "meshscope-proxy",
	}
}

func write(t *testing.T, s tracestore.Store, batch ...spans.Span) {
	t.Helper()
	if err := s.WriteSpans(context.Background(), batch); err != nil {
		t.Fatalf("WriteSpans(%d spans): %v", len(batch), err)
	}
}

func search(t *testing.T, s tracestore.Store, q tracestore.Query) []tracestore.TraceRef {
	t.Helper()
	refs, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return refs
}

func ids(refs []tracestore.TraceRef) []spans.TraceID {
	out := make([]spans.TraceID, len(refs))
	for i, r := range refs {
		out[i] = r.TraceID
	}
	return out
}

// wantTraces checks the set of trace ids found (order-insensitive).
func wantTraces(t *testing.T, q tracestore.Query, got []tracestore.TraceRef, want ...int) {
	t.Helper()
	g := ids(got)
	w := make([]spans.TraceID, len(want))
	for i, n := range want {
		w[i] = tid(n)
	}
	less := func(a, b spans.TraceID) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(g, less)
	slices.SortFunc(w, less)
	if !slices.Equal(g, w) {
		t.Fatalf("Search(%+v) = %v, want %v", q, g, w)
	}
	seen := map[spans.TraceID]bool{}
	for _, r := range got {
		if seen[r.TraceID] {
			t.Fatalf("Search(%+v) returned trace %s twice", q, r.TraceID)
		}
		seen[r.TraceID] = true
	}
}

// normalize makes a span comparable across backends: attribute maps are
// unordered, empty and nil slices are the same.
func normalize(s spans.Span) spans.Span {
	sortAttrs := func(a []spans.Attr) []spans.Attr {
		if len(a) == 0 {
			return nil
		}
		a = slices.Clone(a)
		sort.SliceStable(a, func(i, j int) bool { return a[i].Key < a[j].Key })
		return a
	}
	s.Attrs = sortAttrs(s.Attrs)
	s.Resource = sortAttrs(s.Resource)
	if len(s.Events) == 0 {
		s.Events = nil
	} else {
		ev := make([]spans.Event, len(s.Events))
		for i, e := range s.Events {
			e.Attrs = sortAttrs(e.Attrs)
			ev[i] = e
		}
		s.Events = ev
	}
	if len(s.Links) == 0 {
		s.Links = nil
	} else {
		ln := make([]spans.Link, len(s.Links))
		for i, l := range s.Links {
			l.Attrs = sortAttrs(l.Attrs)
			ln[i] = l
		}
		s.Links = ln
	}
	return s
}

func sortSpans(in []spans.Span) []spans.Span {
	out := make([]spans.Span, len(in))
	for i, s := range in {
		out[i] = normalize(s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SpanID.String() < out[j].SpanID.String() })
	return out
}

func diffSpan(got, want spans.Span) string {
	if fmt.Sprintf("%#v", got) == fmt.Sprintf("%#v", want) {
		return ""
	}
	return fmt.Sprintf("\n got: %#v\nwant: %#v", got, want)
}

// wantTrace reads trace n and compares it with want span for span.
func wantTrace(t *testing.T, s tracestore.Store, n int, want ...spans.Span) {
	t.Helper()
	got, err := s.Trace(context.Background(), tid(n))
	if err != nil {
		t.Fatalf("Trace(%s): %v", tid(n), err)
	}
	g, w := sortSpans(got), sortSpans(want)
	if len(g) != len(w) {
		t.Fatalf("Trace(%s) returned %d spans, want %d: %v", tid(n), len(g), len(w), spanIDs(g))
	}
	for i := range g {
		if d := diffSpan(g[i], w[i]); d != "" {
			t.Fatalf("Trace(%s) span %d differs:%s", tid(n), i, d)
		}
	}
}

func spanIDs(ss []spans.Span) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.SpanID.String()
	}
	return out
}

func testTraceByID(t *testing.T, s tracestore.Store) {
	b := base()
	root := mk(1, 1, "web", "GET /", b, 50*time.Millisecond)
	child := mk(1, 2, "catalog", "GET /items", b.Add(time.Millisecond), 20*time.Millisecond)
	child.ParentSpanID = root.SpanID
	child.Kind = spans.KindClient
	other := mk(2, 1, "web", "GET /", b, 10*time.Millisecond)
	write(t, s, root, other, child)
	wantTrace(t, s, 1, root, child)
	wantTrace(t, s, 2, other)
}

func testTraceNotFound(t *testing.T, s tracestore.Store) {
	write(t, s, mk(1, 1, "web", "GET /", base(), time.Millisecond))
	_, err := s.Trace(context.Background(), tid(99))
	if !errors.Is(err, tracestore.ErrTraceNotFound) {
		t.Fatalf("Trace(unknown id) error = %v, want ErrTraceNotFound", err)
	}
}

func testTraceAcrossBatches(t *testing.T, s tracestore.Store) {
	b := base()
	first := mk(7, 1, "web", "GET /checkout", b, 10*time.Millisecond)
	var noise []spans.Span
	for i := range 50 {
		noise = append(noise, mk(100+i, 1, "cart", "POST /cart", b.Add(time.Duration(i)*time.Second), time.Millisecond))
	}
	// A span of the same trace whose start is minutes later (an async
	// consumer), written in a later batch after unrelated traffic.
	late := mk(7, 2, "payments", "charge", b.Add(4*time.Minute), 3*time.Second)
	late.ParentSpanID = first.SpanID
	later := mk(7, 3, "mailer", "send", b.Add(9*time.Minute), time.Second)
	later.ParentSpanID = late.SpanID
	write(t, s, first)
	write(t, s, noise...)
	write(t, s, late)
	write(t, s, noise[:1]...) // a duplicate delivery of an unrelated span must not disturb trace 7
	write(t, s, later)
	// A client retrying an export whose acknowledgement it lost delivers
	// spans again; Trace returns each span once.
	write(t, s, first, later)
	wantTrace(t, s, 7, first, late, later)

	// Search on a condition only the late span satisfies still finds the trace.
	q := tracestore.Query{Service: "mailer"}
	wantTraces(t, q, search(t, s, q), 7)
}

func testTypedRoundTrip(t *testing.T, s tracestore.Store) {
	b := base()
	sp := spans.Span{
		TraceID:       tid(3),
		SpanID:        sid(3, 1),
		ParentSpanID:  sid(3, 9),
		TraceState:    "vendor=a:b,other=1",
		Service:       "checkout",
		Name:          "POST /checkout",
		Kind:          spans.KindClient,
		StartUnixNano: b.UnixNano() + 123, // nanosecond precision
		EndUnixNano:   b.UnixNano() + 123 + int64(1500*time.Microsecond) + 7,
		StatusCode:    spans.StatusError,
		StatusMessage: "upstream reset",
		Attrs: []spans.Attr{
			spans.StringAttr("http.route", "/checkout"),
			spans.IntAttr("http.status_code", 503),
			spans.IntAttr("negative", -42),
			spans.FloatAttr("ratio", 0.25),
			spans.BoolAttr("retry", true),
			spans.BoolAttr("cached", false),
			{Key: "blob", Type: spans.TypeBytes, Str: "\x00\x01\xfe\xff"},
			spans.StringAttr("empty", ""),
			spans.StringAttr("unicode", "größe ✓"),
		},
		Resource: []spans.Attr{
			spans.StringAttr("service.version", "v2"),
			spans.IntAttr("process.pid", 4242),
		},
		Scope:        "go.opentelemetry.io/otel",
		ScopeVersion: "1.47.0",
		Events: []spans.Event{
			{TimeUnixNano: b.UnixNano() + 500, Name: "retry", Attrs: []spans.Attr{spans.IntAttr("attempt", 2), spans.StringAttr("reason", "reset")}},
			{TimeUnixNano: b.UnixNano() + 900, Name: "exception", Attrs: []spans.Attr{spans.StringAttr("exception.message", "boom")}},
			{TimeUnixNano: b.UnixNano() + 950, Name: "no-attrs"},
		},
		Links: []spans.Link{
			{TraceID: tid(4), SpanID: sid(4, 1), Attrs: []spans.Attr{spans.BoolAttr("sampled", true), spans.FloatAttr("weight", 1.5)}},
			{TraceID: tid(5), SpanID: sid(5, 2)},
		},
	}
	minimal := spans.Span{ // every optional field empty
		TraceID:       tid(3),
		SpanID:        sid(3, 2),
		Service:       "checkout",
		Name:          "",
		StartUnixNano: b.UnixNano(),
		EndUnixNano:   b.UnixNano(),
	}
	write(t, s, sp, minimal)
	wantTrace(t, s, 3, sp, minimal)
}

func testEmptyBatch(t *testing.T, s tracestore.Store) {
	if err := s.WriteSpans(context.Background(), nil); err != nil {
		t.Fatalf("WriteSpans(nil) = %v, want nil", err)
	}
	svcs, err := s.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 0 {
		t.Fatalf("Services() on an empty store = %v, want none", svcs)
	}
	refs, err := s.Search(context.Background(), tracestore.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Fatalf("Search on an empty store = %v, want none", refs)
	}
}

// corpus writes a small mixed dataset used by the search cases:
//
//	trace 1: web GET / 10ms OK   → catalog GET /items 5ms (client attr peer=catalog)
//	trace 2: web GET / 200ms     → payments charge 150ms ERROR
//	trace 3: cart POST /cart 40ms, resource region=eu, attr http.status_code=201 (int)
//	trace 4: web GET /health 1ms
func corpus(t *testing.T, s tracestore.Store) time.Time {
	b := base()
	t1a := mk(1, 1, "web", "GET /", b, 10*time.Millisecond)
	t1b := mk(1, 2, "catalog", "GET /items", b.Add(time.Millisecond), 5*time.Millisecond)
	t1b.Kind = spans.KindClient
	t1b.Attrs = append(t1b.Attrs, spans.StringAttr("peer", "catalog"))
	t2a := mk(2, 1, "web", "GET /", b.Add(time.Second), 200*time.Millisecond)
	t2b := mk(2, 2, "payments", "charge", b.Add(time.Second+time.Millisecond), 150*time.Millisecond)
	t2b.StatusCode = spans.StatusError
	t2b.StatusMessage = "card declined"
	t3 := mk(3, 1, "cart", "POST /cart", b.Add(2*time.Second), 40*time.Millisecond)
	t3.Resource = append(t3.Resource, spans.StringAttr("region", "eu"))
	t3.Attrs = append(t3.Attrs, spans.IntAttr("http.status_code", 201), spans.BoolAttr("cache.hit", true))
	t4 := mk(4, 1, "web", "GET /health", b.Add(3*time.Second), time.Millisecond)
	t4.Kind = spans.KindInternal
	write(t, s, t1a, t1b, t2a)
	write(t, s, t2b, t3, t4)
	return b
}

func testSearchService(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	for _, c := range []struct {
		svc  string
		want []int
	}{
		{"web", []int{1, 2, 4}},
		{"payments", []int{2}},
		{"cart", []int{3}},
		{"nope", nil},
	} {
		q := tracestore.Query{Service: c.svc}
		wantTraces(t, q, search(t, s, q), c.want...)
	}
}

func testSearchOperation(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	for _, c := range []struct {
		svc, op string
		want    []int
	}{
		{"web", "GET /", []int{1, 2}},
		{"web", "GET /health", []int{4}},
		{"", "charge", []int{2}},
		{"catalog", "GET /", nil},
	} {
		q := tracestore.Query{Service: c.svc, Operation: c.op}
		wantTraces(t, q, search(t, s, q), c.want...)
	}
}

func testSearchSpanAttr(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	for _, c := range []struct {
		attrs map[string]string
		want  []int
	}{
		{map[string]string{"peer": "catalog"}, []int{1}},
		{map[string]string{"peer": "cart"}, nil},
		{map[string]string{"http.method": "GET", "peer": "catalog"}, []int{1}},
		{map[string]string{"missing.key": "x"}, nil},
	} {
		q := tracestore.Query{Attrs: c.attrs}
		wantTraces(t, q, search(t, s, q), c.want...)
	}
}

func testSearchResourceAttr(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	q := tracestore.Query{Attrs: map[string]string{"region": "eu"}}
	wantTraces(t, q, search(t, s, q), 3)
	q = tracestore.Query{Service: "cart", Attrs: map[string]string{"host.name": "node-1", "http.method": "GET"}}
	wantTraces(t, q, search(t, s, q), 3)
	q = tracestore.Query{Attrs: map[string]string{"region": "us"}}
	wantTraces(t, q, search(t, s, q))
}

func testSearchTypedAttr(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	q := tracestore.Query{Attrs: map[string]string{"http.status_code": "201"}}
	wantTraces(t, q, search(t, s, q), 3)
	q = tracestore.Query{Attrs: map[string]string{"cache.hit": "true"}}
	wantTraces(t, q, search(t, s, q), 3)
	q = tracestore.Query{Attrs: map[string]string{"http.status_code": "200"}}
	wantTraces(t, q, search(t, s, q))
}

func testSearchSameSpan(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	// Trace 2 has a web span and an error span, but no span that is both.
	q := tracestore.Query{Service: "web", Status: tracestore.StatusError}
	wantTraces(t, q, search(t, s, q))
	// peer=catalog is on the catalog span, not the web span.
	q = tracestore.Query{Service: "web", Attrs: map[string]string{"peer": "catalog"}}
	wantTraces(t, q, search(t, s, q))
	// payments' span lasts 150ms; the web span of trace 2 lasts 200ms.
	q = tracestore.Query{Service: "payments", MinDuration: 180 * time.Millisecond}
	wantTraces(t, q, search(t, s, q))
}

func testSearchDuration(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	for _, c := range []struct {
		svc      string
		min, max time.Duration
		want     []int
	}{
		{"", 100 * time.Millisecond, 0, []int{2}},
		{"web", 5 * time.Millisecond, 0, []int{1, 2}},
		{"web", 0, 20 * time.Millisecond, []int{1, 4}},
		{"web", 5 * time.Millisecond, 20 * time.Millisecond, []int{1}},
		{"", 10 * time.Millisecond, 10 * time.Millisecond, []int{1}}, // bounds inclusive
		{"cart", time.Second, 0, nil},
	} {
		q := tracestore.Query{Service: c.svc, MinDuration: c.min, MaxDuration: c.max}
		wantTraces(t, q, search(t, s, q), c.want...)
	}
}

func testSearchStatus(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	q := tracestore.Query{Status: tracestore.StatusError}
	wantTraces(t, q, search(t, s, q), 2)
	q = tracestore.Query{Service: "payments", Status: tracestore.StatusOK}
	wantTraces(t, q, search(t, s, q))
	q = tracestore.Query{Service: "web", Status: tracestore.StatusOK}
	wantTraces(t, q, search(t, s, q), 1, 2, 4)
}

func testSearchTimeRange(t *testing.T, s tracestore.Store) {
	b := corpus(t, s)
	for _, c := range []struct {
		name       string
		start, end time.Time
		want       []int
	}{
		{"all", b.Add(-time.Minute), b.Add(time.Minute), []int{1, 2, 3, 4}},
		{"from 2s", b.Add(2 * time.Second), time.Time{}, []int{3, 4}},
		{"until 1.5s", time.Time{}, b.Add(1500 * time.Millisecond), []int{1, 2}},
		{"window", b.Add(500 * time.Millisecond), b.Add(2500 * time.Millisecond), []int{2, 3}},
		{"before everything", b.Add(-time.Hour), b.Add(-time.Minute), nil},
	} {
		q := tracestore.Query{Start: c.start, End: c.end}
		wantTraces(t, q, search(t, s, q), c.want...)
	}
}

func testSearchLimitOrder(t *testing.T, s tracestore.Store) {
	b := base()
	var batch []spans.Span
	// 30 traces, one a second; written out of order across batches.
	for i := range 30 {
		n := (i * 7) % 30
		batch = append(batch, mk(n+1, 1, "web", "GET /", b.Add(time.Duration(n)*time.Second), time.Millisecond))
		if len(batch) == 8 {
			write(t, s, batch...)
			batch = nil
		}
	}
	write(t, s, batch...)

	q := tracestore.Query{Service: "web", Limit: 5}
	refs := search(t, s, q)
	wantTraces(t, q, refs, 30, 29, 28, 27, 26)
	for i := range refs {
		if want := tid(30 - i); refs[i].TraceID != want {
			t.Fatalf("Search(limit 5) result %d = %s, want %s (most recent first): %v", i, refs[i].TraceID, want, ids(refs))
		}
		if want := b.Add(time.Duration(29-i) * time.Second); !refs[i].Start.Equal(want) {
			t.Fatalf("Search result %d Start = %v, want %v", i, refs[i].Start, want)
		}
	}
	q = tracestore.Query{Service: "web"}
	if refs := search(t, s, q); len(refs) != tracestore.DefaultSearchLimit {
		t.Fatalf("Search(no limit) returned %d traces, want DefaultSearchLimit=%d", len(refs), tracestore.DefaultSearchLimit)
	}
	q = tracestore.Query{Service: "web", Limit: 100}
	if refs := search(t, s, q); len(refs) != 30 {
		t.Fatalf("Search(limit 100) returned %d traces, want 30", len(refs))
	}
}

func testSearchNoMatch(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	q := tracestore.Query{Service: "web", Operation: "charge"}
	wantTraces(t, q, search(t, s, q))
}

func testServices(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	got, err := s.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"cart", "catalog", "payments", "web"}
	if !slices.Equal(got, want) {
		t.Fatalf("Services() = %v, want %v", got, want)
	}
}

func testOperations(t *testing.T, s tracestore.Store) {
	corpus(t, s)
	// A second kind for the same name must be listed separately.
	extra := mk(9, 1, "web", "GET /", base(), time.Millisecond)
	extra.Kind = spans.KindClient
	write(t, s, extra)
	server, client, internal := spans.KindServer, spans.KindClient, spans.KindInternal
	for _, c := range []struct {
		name string
		q    tracestore.OperationQuery
		want []tracestore.Operation
	}{
		{"all kinds", tracestore.OperationQuery{Service: "web"}, []tracestore.Operation{
			{Name: "GET /", Kind: spans.KindServer}, {Name: "GET /", Kind: spans.KindClient}, {Name: "GET /health", Kind: spans.KindInternal}}},
		{"server", tracestore.OperationQuery{Service: "web", Kind: &server}, []tracestore.Operation{{Name: "GET /", Kind: spans.KindServer}}},
		{"client", tracestore.OperationQuery{Service: "web", Kind: &client}, []tracestore.Operation{{Name: "GET /", Kind: spans.KindClient}}},
		{"internal", tracestore.OperationQuery{Service: "web", Kind: &internal}, []tracestore.Operation{{Name: "GET /health", Kind: spans.KindInternal}}},
		{"other service", tracestore.OperationQuery{Service: "payments"}, []tracestore.Operation{{Name: "charge", Kind: spans.KindServer}}},
		{"unknown service", tracestore.OperationQuery{Service: "nope"}, nil},
	} {
		got, err := s.Operations(context.Background(), c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		slices.SortFunc(got, func(a, b tracestore.Operation) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return int(a.Kind) - int(b.Kind)
		})
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("%s: Operations(%+v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

func testReopen(t *testing.T, s tracestore.Store, reopen func(t *testing.T, s tracestore.Store) tracestore.Store) {
	b := corpus(t, s)
	late := mk(1, 3, "web", "late", b.Add(5*time.Minute), time.Millisecond)
	write(t, s, late)
	s = reopen(t, s)
	defer s.Close()
	got, err := s.Trace(context.Background(), tid(1))
	if err != nil {
		t.Fatalf("Trace after reopen: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("Trace after reopen has %d spans, want 3", len(got))
	}
	q := tracestore.Query{Service: "payments", Status: tracestore.StatusError}
	wantTraces(t, q, search(t, s, q), 2)
	svcs, err := s.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 4 {
		t.Fatalf("Services after reopen = %v, want 4", svcs)
	}
	// Writes keep working after reopen.
	write(t, s, mk(1, 4, "web", "after", b.Add(6*time.Minute), time.Millisecond))
	if got, _ := s.Trace(context.Background(), tid(1)); len(got) != 4 {
		t.Fatalf("Trace after reopen+write has %d spans, want 4", len(got))
	}
}

// sortCorpus writes 15 minutes of traces, one every 10 s (90 traces, trace
// n starting at b+10n s), in batches of 7. Each trace has a root web span
// and a db child span of 1 ms. The three oldest traces are the longest
// (600, 500, 400 ms); the others last 1 to 30 ms. Trace n has n%4 error
// spans (root and child, and a third span for 3).
func sortCorpus(t *testing.T, s tracestore.Store) (b time.Time, dur map[int]time.Duration, errs map[int]int) {
	b = base().Add(-15 * time.Minute)
	dur, errs = map[int]time.Duration{}, map[int]int{}
	var batch []spans.Span
	for n := 1; n <= 90; n++ {
		d := time.Duration(1+(n*7)%30) * time.Millisecond
		switch n {
		case 1:
			d = 600 * time.Millisecond
		case 2:
			d = 500 * time.Millisecond
		case 3:
			d = 400 * time.Millisecond
		}
		st := b.Add(time.Duration(n) * 10 * time.Second)
		root := mk(n, 1, "web", "GET /", st, d)
		child := mk(n, 2, "db", "SELECT", st, time.Millisecond)
		child.Kind = spans.KindClient
		extra := mk(n, 3, "web", "render", st, time.Millisecond)
		extra.Kind = spans.KindInternal
		e := n % 4
		if e >= 1 {
			root.StatusCode = spans.StatusError
		}
		if e >= 2 {
			child.StatusCode = spans.StatusError
		}
		if e >= 3 {
			extra.StatusCode = spans.StatusError
		}
		dur[n], errs[n] = d, e
		batch = append(batch, root, child, extra)
		if n%7 == 0 {
			write(t, s, batch...)
			batch = nil
		}
	}
	write(t, s, batch...)
	return b, dur, errs
}

// wantOrder checks that refs are exactly the first len(want) traces of want.
func wantOrder(t *testing.T, q tracestore.Query, refs []tracestore.TraceRef, want []int) {
	t.Helper()
	w := make([]spans.TraceID, len(want))
	for i, n := range want {
		w[i] = tid(n)
	}
	if !slices.Equal(ids(refs), w) {
		t.Fatalf("Search(sort %v, service %q, limit %d) = %v\nwant %v", q.Sort, q.Service, q.Limit, ids(refs), w)
	}
}

// expectedOrder sorts traces 1..90 by key descending, then newest first.
func expectedOrder(key func(n int) int64, limit int) []int {
	var ns []int
	for n := 1; n <= 90; n++ {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b int) int {
		if ka, kb := key(a), key(b); ka != kb {
			if ka > kb {
				return -1
			}
			return 1
		}
		return b - a // trace n starts later than trace n-1
	})
	return ns[:limit]
}

// The longest traces are the oldest: sort=longest must find them over the
// whole range (not sort the 20 newest), by the duration of the whole trace
// even when the matching span is short.
func testSortLongest(t *testing.T, s tracestore.Store) {
	b, dur, _ := sortCorpus(t, s)
	want := expectedOrder(func(n int) int64 { return int64(dur[n]) }, 20)
	if want[0] != 1 || want[1] != 2 || want[2] != 3 {
		t.Fatalf("corpus: longest traces %v, want 1, 2, 3 first", want[:3])
	}
	for _, svc := range []string{"web", "db", ""} {
		q := tracestore.Query{Service: svc, Start: b, End: b.Add(16 * time.Minute), Limit: 20, Sort: tracestore.SortLongest}
		wantOrder(t, q, search(t, s, q), want)
	}
	// The default order does not reach them within the limit.
	q := tracestore.Query{Service: "web", Start: b, End: b.Add(16 * time.Minute), Limit: 20}
	for _, r := range search(t, s, q) {
		if r.TraceID == tid(1) || r.TraceID == tid(2) || r.TraceID == tid(3) {
			t.Fatalf("newest-first search over 90 traces returned old trace %s within 20", r.TraceID)
		}
	}
	// Conditions still filter before sorting: only traces whose root lasts
	// ≥ 20 ms, longest first.
	q = tracestore.Query{Service: "web", Operation: "GET /", MinDuration: 20 * time.Millisecond, Start: b, End: b.Add(16 * time.Minute), Limit: 5, Sort: tracestore.SortLongest}
	wantOrder(t, q, search(t, s, q), expectedOrder(func(n int) int64 {
		if dur[n] < 20*time.Millisecond {
			return -1
		}
		return int64(dur[n])
	}, 5))
}

func testSortErrors(t *testing.T, s tracestore.Store) {
	b, _, errs := sortCorpus(t, s)
	want := expectedOrder(func(n int) int64 { return int64(errs[n]) }, 30)
	q := tracestore.Query{Service: "web", Start: b, End: b.Add(16 * time.Minute), Limit: 30, Sort: tracestore.SortErrors}
	wantOrder(t, q, search(t, s, q), want)
	// Within the time range only.
	q.Start, q.End = b.Add(95*time.Second), b.Add(205*time.Second) // traces 10..20
	want = nil
	for _, n := range []int{19, 15, 11, 18, 14, 10, 17, 13, 20, 16, 12} {
		want = append(want, n)
	}
	wantOrder(t, q, search(t, s, q), want)
}

func testSortNewestDefault(t *testing.T, s tracestore.Store) {
	b, _, _ := sortCorpus(t, s)
	q := tracestore.Query{Service: "db", Start: b, End: b.Add(16 * time.Minute), Limit: 10}
	refs := search(t, s, q)
	q.Sort = tracestore.SortNewest
	if again := search(t, s, q); !slices.Equal(ids(refs), ids(again)) {
		t.Fatalf("zero Sort %v differs from SortNewest %v", ids(refs), ids(again))
	}
	wantOrder(t, q, refs, []int{90, 89, 88, 87, 86, 85, 84, 83, 82, 81})
}

// serviceInfoLister is implemented by stores that mark unmeshed services.
type serviceInfoLister interface {
	ServiceInfos(ctx context.Context) ([]tracestore.ServiceInfo, error)
}

// Services without spans of their own are listed (and marked) from the
// CLIENT spans calling them, and a search for them finds those traces.
func testPeerServices(t *testing.T, s tracestore.Store) {
	b := base()
	client := func(trace, n int, svc, op string, attrs ...spans.Attr) spans.Span {
		sp := mk(trace, n, svc, op, b.Add(time.Duration(trace)*time.Second), 5*time.Millisecond)
		sp.Kind = spans.KindClient
		sp.Attrs = append(sp.Attrs, attrs...)
		return sp
	}
	write(t, s,
		mk(1, 1, "web", "GET /cart", b.Add(time.Second), 20*time.Millisecond),
		client(1, 2, "web", "GET /cart", spans.StringAttr("mesh.destination.service", "cart")),
		mk(1, 3, "cart", "GET /cart", b.Add(time.Second), 10*time.Millisecond),
		client(1, 4, "cart", "GET /prices", spans.StringAttr("mesh.destination.service", "pricing"), spans.StringAttr("server.address", "127.0.0.1")),
		client(2, 1, "checkout", "charge", spans.StringAttr("peer.service", "stripe")),
		client(3, 1, "checkout", "GET /stock", spans.StringAttr("server.address", "ledger")),
		client(4, 1, "checkout", "GET /ext", spans.StringAttr("server.address", "api.example.com")),
		client(5, 1, "checkout", "GET /self", spans.StringAttr("server.address", "localhost")),
		client(6, 1, "checkout", "GET /ip", spans.StringAttr("net.peer.name", "10.0.0.7")),
		client(7, 1, "checkout", "GET /unknown", spans.StringAttr("mesh.destination.service", "external"), spans.StringAttr("server.address", "billing")),
	)
	// A server span naming a peer does not make one.
	srv := mk(8, 1, "checkout", "GET /", b.Add(8*time.Second), time.Millisecond)
	srv.Attrs = append(srv.Attrs, spans.StringAttr("peer.service", "ghost"))
	write(t, s, srv)

	got, err := s.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"billing", "cart", "checkout", "ledger", "pricing", "stripe", "web"}
	if !slices.Equal(got, want) {
		t.Fatalf("Services() = %v, want %v (sorted)", got, want)
	}
	if sl, ok := s.(serviceInfoLister); ok {
		infos, err := sl.ServiceInfos(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		unmeshed := map[string]bool{}
		var names []string
		for _, in := range infos {
			names = append(names, in.Name)
			unmeshed[in.Name] = in.Unmeshed
		}
		if !slices.Equal(names, want) {
			t.Fatalf("ServiceInfos() names = %v, want %v", names, want)
		}
		for _, n := range want {
			wantU := n == "pricing" || n == "stripe" || n == "ledger" || n == "billing"
			if unmeshed[n] != wantU {
				t.Errorf("ServiceInfos(): %s unmeshed = %v, want %v", n, unmeshed[n], wantU)
			}
		}
	} else {
		t.Errorf("store %T does not list services with their kind (ServiceInfos)", s)
	}
	for _, c := range []struct {
		q    tracestore.Query
		want []int
	}{
		{tracestore.Query{Service: "pricing"}, []int{1}},
		{tracestore.Query{Service: "pricing", Operation: "GET /prices"}, []int{1}},
		{tracestore.Query{Service: "pricing", Operation: "GET /cart"}, nil},
		{tracestore.Query{Service: "stripe"}, []int{2}},
		{tracestore.Query{Service: "ledger"}, []int{3}},
		{tracestore.Query{Service: "billing"}, []int{7}},
		{tracestore.Query{Service: "cart"}, []int{1}},
		{tracestore.Query{Service: "api.example.com"}, nil},
		{tracestore.Query{Service: "ghost"}, nil},
	} {
		wantTraces(t, c.q, search(t, s, c.q), c.want...)
	}
	// An unmeshed service's operations are the CLIENT spans calling it; a
	// service with spans of its own lists only its own.
	clientKind, serverKind := spans.KindClient, spans.KindServer
	for _, c := range []struct {
		q    tracestore.OperationQuery
		want []tracestore.Operation
	}{
		{tracestore.OperationQuery{Service: "pricing"}, []tracestore.Operation{{Name: "GET /prices", Kind: spans.KindClient}}},
		{tracestore.OperationQuery{Service: "pricing", Kind: &clientKind}, []tracestore.Operation{{Name: "GET /prices", Kind: spans.KindClient}}},
		{tracestore.OperationQuery{Service: "pricing", Kind: &serverKind}, nil},
		{tracestore.OperationQuery{Service: "cart"}, []tracestore.Operation{{Name: "GET /cart", Kind: spans.KindServer}, {Name: "GET /prices", Kind: spans.KindClient}}},
	} {
		got, err := s.Operations(context.Background(), c.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 || len(c.want) != 0 {
			if !slices.Equal(got, c.want) {
				t.Errorf("Operations(%+v) = %v, want %v", c.q, got, c.want)
			}
		}
	}
}
