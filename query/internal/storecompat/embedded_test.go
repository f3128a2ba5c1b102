package storecompat_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/jaegerapi"
)

// TestEmbeddedStoreSameAnswers serves the fixture traces from the real
// embedded trace store and checks that every trace endpoint answers
// byte-for-byte what it answers over the in-memory fake.
func TestEmbeddedStoreSameAnswers(t *testing.T) {
	store, err := embedded.New(embedded.Config{Dir: t.TempDir(), NoSync: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	fake := fixture.SampleTraces()
	if err := store.WriteSpans(context.Background(), fake.Spans); err != nil {
		t.Fatal(err)
	}
	serve := func(r tracestore.Reader) *httptest.Server {
		api := jaegerapi.New(jaegerapi.Options{Now: func() time.Time { return fixture.Now }}, r, nil)
		mux := http.NewServeMux()
		api.RegisterRoutes(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv
	}
	emb, want := serve(store), serve(fake)
	paths := []string{
		"/services",
		"/services/catalog/operations",
		"/operations?service=web",
		"/operations?service=catalog&spanKind=internal",
		"/traces/" + fixture.TraceID(1).String(),
		"/traces/" + fixture.TraceID(3).String(),
		"/traces/0123456789abcdef0123456789abcdef",
		"/traces?service=web",
		"/traces?" + url.Values{"service": {"checkout"}, "tags": {`{"http.response.status_code":"502"}`}}.Encode(),
		"/traces?" + url.Values{"service": {"catalog"}, "minDuration": {"100ms"}}.Encode(),
		"/traces?" + url.Values{"service": {"payments"}, "tags": {`{"error":"true"}`}}.Encode(),
		"/traces?service=web&limit=1",
	}
	get := func(srv *httptest.Server, p string) string {
		resp, err := http.Get(srv.URL + jaegerapi.Prefix + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	for _, p := range paths {
		if got, exp := get(emb, p), get(want, p); got != exp {
			t.Errorf("%s over the embedded store:\n%s\nover the fake:\n%s", p, got, exp)
		}
	}
}
