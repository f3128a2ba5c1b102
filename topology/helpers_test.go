package topology

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// base is the start of synthetic data in tests.
var base = time.Unix(1_750_000_000, 0).UTC()

func openDB(t testing.TB) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatalf("opening tsdb: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:           50_000_000,
		Timeout:              time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
}

// newTestTopology returns a Topology over a fresh TSDB whose clock is fixed
// at *now.
func newTestTopology(t testing.TB, cfg Config) (*Topology, *tsdb.DB, *prometheus.Registry) {
	t.Helper()
	db := openDB(t)
	reg := prometheus.NewRegistry()
	top, err := New(cfg, newEngine(), db, db, reg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return top, db, reg
}

// call describes one stream of requests as a proxy reports it.
type call struct {
	dir            string // inbound or outbound
	src, srcVer    string
	dst, dstVer    string
	proto          string
	rps            float64 // requests per second
	failFrac       float64 // fraction of failures
	latency        float64 // seconds (every request)
	bytesPerReq    float64 // request + response bytes per request
	statusOK, fail string  // status codes (default 200 / 500)
	tls            string  // the tls label ("" = none, as before it existed)
}

type proxy struct{ service, version, mode string }

// appendGolden appends what proxies push once a second for the seconds
// from..to (inclusive, offsets from base): cumulative golden metrics of
// every call and meshscope_proxy_info of every proxy.
func appendGolden(t testing.TB, db storage.Appendable, from, to int, calls []call, proxies []proxy) {
	t.Helper()
	app := db.Appender(context.Background())
	for i := from; i <= to; i++ {
		ts := base.Add(time.Duration(i) * time.Second).UnixMilli()
		n := float64(i) // requests so far per unit rps
		for _, c := range calls {
			okCode, failCode := c.statusOK, c.fail
			if okCode == "" {
				okCode = "200"
			}
			if failCode == "" {
				failCode = "500"
			}
			common := []string{"direction", c.dir, "source_service", c.src, "source_version", c.srcVer,
				"destination_service", c.dst, "destination_version", c.dstVer, "protocol", c.proto, "route", "unmatched"}
			if c.tls != "" {
				common = append(common, "tls", c.tls)
			}
			for _, oc := range []struct {
				outcome, code string
				count         float64
			}{{"success", okCode, c.rps * (1 - c.failFrac) * n}, {"failure", failCode, c.rps * c.failFrac * n}} {
				if oc.count == 0 && oc.outcome == "failure" {
					continue
				}
				lbl := func(name string, extra ...string) labels.Labels {
					all := append([]string{labels.MetricName, name, "outcome", oc.outcome}, common...)
					return labels.FromStrings(append(all, extra...)...)
				}
				mustAppend(t, app, lbl(metricRequests, "status_code", oc.code, "grpc_status", ""), ts, oc.count)
				for _, le := range durationBuckets {
					v := 0.0
					if c.latency <= le {
						v = oc.count
					}
					mustAppend(t, app, lbl(metricDuration+"_bucket", "le", strconv.FormatFloat(le, 'g', -1, 64)), ts, v)
				}
				mustAppend(t, app, lbl(metricDuration+"_bucket", "le", "+Inf"), ts, oc.count)
				mustAppend(t, app, lbl(metricDuration+"_count"), ts, oc.count)
				mustAppend(t, app, lbl(metricDuration+"_sum"), ts, oc.count*c.latency)
				mustAppend(t, app, lbl(metricReqBytes), ts, oc.count*c.bytesPerReq/2)
				mustAppend(t, app, lbl(metricRespBytes), ts, oc.count*c.bytesPerReq/2)
			}
		}
		for _, p := range proxies {
			mustAppend(t, app, labels.FromStrings(labels.MetricName, metricProxyInfo, "service", p.service, "version", p.version, "mode", p.mode), ts, 1)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func mustAppend(t testing.TB, app storage.Appender, l labels.Labels, ts int64, v float64) {
	t.Helper()
	if _, err := app.Append(0, l, ts, v); err != nil {
		t.Fatalf("append %s @%d: %v", l, ts, err)
	}
}

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func nodeByID(g *Graph, id string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

func edgeByID(g *Graph, id string) *Edge {
	for i := range g.Edges {
		if g.Edges[i].ID == id {
			return &g.Edges[i]
		}
	}
	return nil
}

func ids[T any](xs []T, id func(T) string) string {
	s := ""
	for _, x := range xs {
		s += id(x) + " "
	}
	return fmt.Sprint(s)
}

func labelsOf(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
