package metricstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
)

func TestSelfMetricsQueryableWithPromQL(t *testing.T) {
	st, err := New(Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshscope_collector_spans_received_total", Help: "x"}, []string{"protocol"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshscope_collector_wal_fsync_duration_seconds", Help: "x", Buckets: []float64{0.001, 0.01}})
	reg.MustRegister(c, h)
	c.WithLabelValues("grpc").Add(42)
	h.Observe(0.005)

	sm, err := NewSelfMetrics(SelfMetricsConfig{}, reg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sm.now = func() time.Time { return now }
	if err := sm.AppendOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	for _, c := range []struct {
		expr string
		want float64
	}{
		{`meshscope_collector_spans_received_total{job="meshscope",instance="server",protocol="grpc"}`, 42},
		{`meshscope_collector_wal_fsync_duration_seconds_bucket{le="0.01"}`, 1},
		{`meshscope_collector_wal_fsync_duration_seconds_bucket{le="0.001"}`, 0},
		{`meshscope_collector_wal_fsync_duration_seconds_bucket{le="+Inf"}`, 1},
		{`meshscope_collector_wal_fsync_duration_seconds_count`, 1},
	} {
		q, err := eng.NewInstantQuery(context.Background(), st, nil, c.expr, now)
		if err != nil {
			t.Fatal(err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatalf("%s: %v", c.expr, res.Err)
		}
		v, err := res.Vector()
		if err != nil || len(v) != 1 {
			t.Fatalf("%s = %v (%v), want one sample", c.expr, res.Value, err)
		}
		if v[0].F != c.want {
			t.Fatalf("%s = %v, want %v", c.expr, v[0].F, c.want)
		}
		if v[0].Metric.Get("job") != "meshscope" {
			t.Fatalf("%s labels %v lack job=meshscope", c.expr, v[0].Metric)
		}
	}
	// Their metadata is recorded with the registry's help texts.
	md := st.MetricMetadata()
	if got := md["meshscope_collector_wal_fsync_duration_seconds"]; got.Type != "histogram" || got.Help != "x" {
		t.Errorf("self-metric metadata = %+v, want histogram with its help", got)
	}
	if got := md["meshscope_collector_spans_received_total"]; got.Type != "counter" {
		t.Errorf("self-metric metadata = %+v, want counter", got)
	}
}

func TestConfigValidateNamesKey(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "metrics.dir"},
		{Config{Dir: "x", Retention: -1}, "metrics.retention"},
		{Config{Dir: "x", Retention: time.Second}, "metrics.retention"},
		{Config{Dir: "x", MaxBytes: -1}, "metrics.max_bytes"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("Validate(%+v) = %v, want error naming %s", c.cfg, err, c.want)
		}
	}
}
