package metricstore

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
)

func TestRemoteConfigValidate(t *testing.T) {
	ok := RemoteConfig{WriteURL: "http://p:9090/api/v1/write", PrometheusURL: "http://p:9090"}
	for _, tc := range []struct {
		name string
		edit func(*RemoteConfig)
		want string // "" = valid
	}{
		{"prometheus url", func(*RemoteConfig) {}, ""},
		{"read url instead", func(c *RemoteConfig) { c.PrometheusURL, c.ReadURL = "", "https://m/prometheus/api/v1/read" }, ""},
		{"no write url", func(c *RemoteConfig) { c.WriteURL = "" }, "--remote-write-url"},
		{"write url without scheme", func(c *RemoteConfig) { c.WriteURL = "p:9090/api/v1/write" }, `metrics.remote.write_url (--remote-write-url): "p:9090/api/v1/write" must be an http:// or https:// URL`},
		{"no read side", func(c *RemoteConfig) { c.PrometheusURL = "" }, "one must be set"},
		{"both read sides", func(c *RemoteConfig) { c.ReadURL = "http://p:9090/api/v1/read" }, "not both"},
		{"bad prometheus url", func(c *RemoteConfig) { c.PrometheusURL = "ftp://p" }, "--prometheus-url"},
		{"negative shards", func(c *RemoteConfig) { c.MaxShards = -1 }, "metrics.remote.max_shards"},
		{"negative deadline", func(c *RemoteConfig) { c.BatchSendDeadline = -time.Second }, "metrics.remote.batch_send_deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	if err := (&Config{Dir: "d", Store: "s3"}).Validate(); err == nil || !strings.Contains(err.Error(), `metrics.store (--metrics-store): "s3"`) {
		t.Errorf("store s3: %v", err)
	}
}

// TestRemoteRoundTrip appends through the remote store to Prometheus' own
// remote-write and remote-read handlers over a TSDB, and reads the samples
// back with PromQL: sent by the queue, labelled with the server (except a
// rule's output), read with remote read.
func TestRemoteRoundTrip(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", remote.NewWriteHandler(nil, nil, db, remoteapi.MessageTypes{remoteapi.WriteV1MessageType}, false, false))
	mux.Handle("/api/v1/read", remote.NewReadHandler(nil, nil, db, func() config.Config { return config.DefaultConfig }, 0, 1, 1<<20))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	st, err := OpenRemote(RemoteConfig{WriteURL: srv.URL + "/api/v1/write", PrometheusURL: srv.URL, Server: "s1:7070",
		BatchSendDeadline: 50 * time.Millisecond}, t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The queue sends samples newer than its start (strictly, in ms).
	now := time.Now().Add(100 * time.Millisecond)
	app := st.Appender(context.Background())
	for i, v := range []float64{3, 5} {
		if _, err := app.Append(0, labels.FromStrings("__name__", "mesh_requests_total", "source_service", "a"), now.Add(time.Duration(i)*time.Second).UnixMilli(), v); err != nil {
			t.Fatal(err)
		}
	}
	// A recording rule's output is the cluster's: no server label.
	if _, err := app.Append(0, labels.FromStrings("__name__", "job:answer:sum"), now.UnixMilli(), 42); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	deadline := time.Now().Add(30 * time.Second)
	for tick := 0; ; tick++ {
		// A live source keeps appending; each commit wakes the queue's WAL
		// watcher (one that raced the first commit waits for the next).
		ta := st.Appender(context.Background())
		if _, err := ta.Append(0, labels.FromStrings("__name__", "tick"), time.Now().UnixMilli(), float64(tick)); err != nil {
			t.Fatal(err)
		}
		if err := ta.Commit(); err != nil {
			t.Fatal(err)
		}
		q, err := eng.NewInstantQuery(context.Background(), st, nil, `sum by (meshscope_server) (mesh_requests_total)`, now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		v, _ := res.Vector()
		q2, err := eng.NewInstantQuery(context.Background(), st, nil, `job:answer:sum`, now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		rule, _ := q2.Exec(context.Background()).Vector()
		if len(v) == 1 && v[0].F == 5 && v[0].Metric.Get(ServerLabel) == "s1:7070" &&
			len(rule) == 1 && rule[0].Metric.String() == `{__name__="job:answer:sum"}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote answer = %v and %v, want 5 from meshscope_server s1:7070 and job:answer:sum without it", v, rule)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRemoteStoreDownIsQueryError: an unreachable store is an error of the
// query, not an empty answer.
func TestRemoteStoreDownIsQueryError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // its address now refuses connections
	st, err := OpenRemote(RemoteConfig{WriteURL: srv.URL + "/api/v1/write", PrometheusURL: srv.URL, Server: "s1:7070"}, t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q, err := eng.NewInstantQuery(context.Background(), st, nil, `mesh_requests_total`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res := q.Exec(context.Background()); res.Err == nil || !strings.Contains(res.Err.Error(), "remote_read") {
		t.Errorf("query with the store down: %v, %v; want a remote read error", res.Value, res.Err)
	}
}
