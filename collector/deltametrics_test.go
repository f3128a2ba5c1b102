package collector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/spans"
)

// mixedRequest is one OTLP metrics request with a delta sum, a delta
// histogram, a delta exponential histogram, a cumulative sum and a gauge,
// all at time at covering (at-10s, at].
func mixedRequest(at time.Time, delta float64) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "mixed")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("test")
	start, ts := pcommon.NewTimestampFromTime(at.Add(-10*time.Second)), pcommon.NewTimestampFromTime(at)

	m := sm.Metrics().AppendEmpty()
	m.SetName("jobs.done")
	m.SetDescription("Jobs finished.")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(start)
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(delta)
	dp.Attributes().PutStr("queue", "q1")

	m = sm.Metrics().AppendEmpty()
	m.SetName("job.duration")
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	hp := h.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(start)
	hp.SetTimestamp(ts)
	hp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 1})
	hp.SetCount(4)
	hp.SetSum(3)

	m = sm.Metrics().AppendEmpty()
	m.SetName("job.latency")
	m.SetUnit("s")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	ep := eh.DataPoints().AppendEmpty()
	ep.SetStartTimestamp(start)
	ep.SetTimestamp(ts)
	ep.SetScale(1)
	ep.Positive().SetOffset(0)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 1})
	ep.SetCount(2)
	ep.SetSum(2.5)

	m = sm.Metrics().AppendEmpty()
	m.SetName("restarts")
	s = m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp = s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(start)
	dp.SetTimestamp(ts)
	dp.SetIntValue(7)

	m = sm.Metrics().AppendEmpty()
	m.SetName("queue.depth")
	dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(12)
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

// A request mixing delta sums and histograms with other points is stored
// whole: the deltas become cumulative series (the second request adds to
// the first), nothing is refused. A delta point not after its stream's
// last is rejected alone, as partial success with 200.
func TestDeltaMetricsBecomeCumulative(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	conn, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pmetricotlp.NewGRPCClient(conn)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)

	resp, err := client.Export(context.Background(), mixedRequest(t0, 5))
	if err != nil {
		t.Fatalf("gRPC export of a mixed request with deltas: %v", err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 0 || ps.ErrorMessage() != "" {
		t.Fatalf("partial success %d %q, want none", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	// The second delta over OTLP/HTTP, 10 s later.
	t1 := t0.Add(10 * time.Second)
	body, _ := mixedRequest(t1, 3).MarshalProto()
	hresp, hbody := post(t, "http://"+e.c.HTTPAddr()+"/v1/metrics", "application/x-protobuf", "", body)
	if hresp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP export: %d %q", hresp.StatusCode, hbody)
	}

	for _, c := range []struct {
		expr string
		want float64
	}{
		{`jobs_done_total{job="mixed",queue="q1"}`, 8},
		{`job_duration_seconds_count{job="mixed"}`, 8},
		{`job_duration_seconds_bucket{job="mixed",le="1"}`, 6},
		{`job_duration_seconds_sum{job="mixed"}`, 6},
		{`histogram_count(job_latency_seconds{job="mixed"})`, 4},
		{`histogram_sum(job_latency_seconds{job="mixed"})`, 5},
		{`restarts_total{job="mixed"}`, 7},
		{`queue_depth{job="mixed"}`, 12},
	} {
		v := query(t, e.metrics, c.expr, t1)
		if len(v) != 1 || v[0].F != c.want {
			t.Errorf("%s = %v, want %v", c.expr, v, c.want)
		}
	}
	// The first request's delta alone, at t0.
	if v := query(t, e.metrics, `jobs_done_total{job="mixed"}`, t0); len(v) != 1 || v[0].F != 5 {
		t.Errorf("jobs_done_total at t0 = %v, want 5", v)
	}

	// A delta point not after the stream's last: rejected alone.
	resp, err = client.Export(context.Background(), mixedRequest(t1, 1))
	if err != nil {
		t.Fatalf("replayed request: %v", err)
	}
	ps := resp.PartialSuccess()
	if ps.RejectedDataPoints() != 3 || !strings.Contains(ps.ErrorMessage(), "not after the stream's last point") {
		t.Fatalf("replayed deltas: partial success %d %q, want the 3 delta points rejected", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	if v := query(t, e.metrics, `jobs_done_total{job="mixed"}`, t1); len(v) != 1 || v[0].F != 8 {
		t.Errorf("after the replay jobs_done_total = %v, want still 8", v)
	}
}

// failingAppendable is a metrics sink whose disk is broken.
type failingAppendable struct{}

type failingAppender struct{}

func (failingAppendable) AppenderV2(context.Context) storage.AppenderV2 { return failingAppender{} }
func (failingAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AppendV2Options) (storage.SeriesRef, error) {
	return 0, errors.New("write /data/metrics/wal/00000001: no space left on device")
}
func (failingAppender) AppendExemplars(storage.SeriesRef, labels.Labels, []exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, nil
}
func (failingAppender) Commit() error   { return nil }
func (failingAppender) Rollback() error { return nil }

// A storage failure is retryable: 503 / UNAVAILABLE, not INVALID_ARGUMENT.
func TestMetricsStorageFailureIsRetryable(t *testing.T) {
	sink := consumer.SpansFunc(func(context.Context, []spans.Span) error { return nil })
	c, err := New(Config{OTLPGRPC: "127.0.0.1:0", OTLPHTTP: "127.0.0.1:0"}, Sinks{Spans: sink, Metrics: failingAppendable{}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pmetricotlp.NewGRPCClient(conn).Export(context.Background(), mixedRequest(time.Now(), 1))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("gRPC with a failing store: %v, want UNAVAILABLE naming the failure", err)
	}
	body, _ := mixedRequest(time.Now().Add(time.Second), 1).MarshalProto()
	resp, rb := post(t, "http://"+c.HTTPAddr()+"/v1/metrics", "application/x-protobuf", "", body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("HTTP with a failing store: %d %q, want 503 with Retry-After", resp.StatusCode, rb)
	}
}

// The OpenTelemetry Go SDK exporting with delta temporality (its
// DeltaTemporalitySelector): counters, histograms and exponential
// histograms arrive as deltas and are queryable as cumulative series.
func TestSDKDeltaTemporality(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	ctx := context.Background()
	exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(e.c.GRPCAddr()), otlpmetricgrpc.WithInsecure(),
		otlpmetricgrpc.WithTemporalitySelector(sdkmetric.DeltaTemporalitySelector))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	reader := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(sdkmetric.DeltaTemporalitySelector))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "deltasvc"))),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "payload"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	defer mp.Shutdown(ctx)
	m := mp.Meter("test")
	reqs, _ := m.Int64Counter("reqs")
	dur, _ := m.Float64Histogram("dur", otelmetric.WithUnit("s"), otelmetric.WithExplicitBucketBoundaries(0.1, 1))
	payload, _ := m.Float64Histogram("payload", otelmetric.WithUnit("By"))
	export := func() {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		if err := exp.Export(ctx, &rm); err != nil {
			t.Fatalf("export: %v", err)
		}
	}
	reqs.Add(ctx, 4)
	dur.Record(ctx, 0.05)
	payload.Record(ctx, 100)
	export()
	time.Sleep(10 * time.Millisecond) // the next delta ends later
	reqs.Add(ctx, 6)
	dur.Record(ctx, 0.5)
	dur.Record(ctx, 5)
	payload.Record(ctx, 3000)
	export()

	now := time.Now()
	for _, c := range []struct {
		expr string
		want float64
	}{
		{`reqs_total{job="deltasvc"}`, 10},
		{`dur_seconds_count{job="deltasvc"}`, 3},
		{`dur_seconds_bucket{job="deltasvc",le="1"}`, 2},
		{`histogram_count(payload_bytes{job="deltasvc"})`, 2},
	} {
		if v := query(t, e.metrics, c.expr, now); len(v) != 1 || v[0].F != c.want {
			t.Errorf("%s = %v, want %v", c.expr, v, c.want)
		}
	}
}
