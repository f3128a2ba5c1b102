//go:build unix

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// TestRemoteWriteFromPrometheus runs the real Prometheus server (Debian
// package `prometheus`) scraping itself with remote_write to the server's
// /api/v1/write (remote write 1.0, with metadata), then reads the samples
// back with PromQL and the metadata from /api/v1/metadata.
func TestRemoteWriteFromPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus); skipping the remote-write test with a real Prometheus")
	}
	s := startServer(t)
	promAddr := freeAddrs(t, 1)[0]
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rwsource
    static_configs:
      - targets: [%q]
remote_write:
  - url: http://%s/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 1s
`, promAddr, s.http)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startProc(t, "prometheus", promBin, "--config.file="+cfgPath,
		"--web.listen-address="+promAddr, "--storage.tsdb.path="+filepath.Join(dir, "data"))
	waitReady(t, prom, "http://"+promAddr+"/-/ready", 60*time.Second)

	// Samples scraped by Prometheus arrive and are queryable.
	poll(t, 90*time.Second, "remote-written up{job=\"rwsource\"}", func() (bool, string) {
		res, err := promQuery(s, `up{job="rwsource"}`)
		if err != nil {
			return false, err.Error()
		}
		return len(res) == 1 && res[0].float() == 1, fmt.Sprintf("%v", res)
	}, s.proc, prom)
	poll(t, 90*time.Second, "remote-written counter", func() (bool, string) {
		res, err := promQuery(s, `prometheus_http_requests_total{job="rwsource",handler="/-/ready",code="200"}`)
		if err != nil {
			return false, err.Error()
		}
		return len(res) == 1 && res[0].float() >= 1, fmt.Sprintf("%v", res)
	}, s.proc, prom)
	// Prometheus saw no failure from the server (before the fix every
	// request was answered 500 and retried forever).
	failed, _, err := scrape("http://"+promAddr+"/metrics", "prometheus_remote_storage_samples_failed_total")
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("prometheus_remote_storage_samples_failed_total = %v, want 0", failed)
	}
	if out := s.output(); strings.Contains(out, "ExemplarAppenderV2") {
		t.Errorf("server log mentions the appender error:\n%s", out)
	}

	// Metadata carried by remote write 1.0 is served as Prometheus serves it.
	poll(t, 90*time.Second, "metadata of prometheus_http_requests_total", func() (bool, string) {
		var r struct {
			Data map[string][]struct{ Type, Help, Unit string } `json:"data"`
		}
		if err := getJSON(s.url("/api/v1/metadata?metric=prometheus_http_requests_total"), &r); err != nil {
			return false, err.Error()
		}
		md := r.Data["prometheus_http_requests_total"]
		return len(md) == 1 && md[0].Type == "counter" && md[0].Help == "Counter of HTTP requests.", fmt.Sprintf("%+v", r.Data)
	}, s.proc, prom)
}

// TestRemoteWrite2 sends a remote write 2.0 request (the real protobuf
// messages, through client_golang's remote-write client) to the server and
// reads the samples and the per-series metadata back.
func TestRemoteWrite2(t *testing.T) {
	s := startServer(t)
	client, err := remoteapi.NewAPI("http://"+s.http, remoteapi.WithAPIPath("/api/v1/write"),
		remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond, MaxRetries: 1}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	// Symbols: index 0 is always "".
	symbols := []string{"", "__name__", "rw2_jobs_done_total", "job", "rw2", "Jobs finished.", "rw2_queue_seconds", "Time in the queue.", "seconds"}
	req := &writev2.Request{
		Symbols: symbols,
		Timeseries: []writev2.TimeSeries{
			{
				LabelsRefs: []uint32{1, 2, 3, 4},
				Samples:    []writev2.Sample{{Value: 41, Timestamp: now - 1000}, {Value: 42, Timestamp: now}},
				Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: 5},
			},
			{
				LabelsRefs: []uint32{1, 6, 3, 4},
				Histograms: []writev2.Histogram{{
					Count: &writev2.Histogram_CountInt{CountInt: 3}, Sum: 1.5, Schema: 0,
					ZeroThreshold: 1e-128, ZeroCount: &writev2.Histogram_ZeroCountInt{ZeroCountInt: 0},
					PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 1},
					Timestamp: now,
				}},
				Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: 7, UnitRef: 8},
			},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stats, err := client.Write(ctx, remoteapi.WriteV2MessageType, req)
	if err != nil {
		t.Fatalf("remote write 2.0: %v", err)
	}
	if stats.Samples != 2 || stats.Histograms != 1 {
		t.Errorf("written stats = %+v, want 2 samples and 1 histogram", stats)
	}
	res, err := promQuery(s, `rw2_jobs_done_total{job="rw2"}`)
	if err != nil || len(res) != 1 || res[0].float() != 42 {
		t.Fatalf("rw2_jobs_done_total = %v, %v; want 42", res, err)
	}
	res, err = promQuery(s, `histogram_count(rw2_queue_seconds{job="rw2"})`)
	if err != nil || len(res) != 1 || res[0].float() != 3 {
		t.Fatalf("histogram_count(rw2_queue_seconds) = %v, %v; want 3", res, err)
	}
	var md struct {
		Data map[string][]struct{ Type, Help, Unit string } `json:"data"`
	}
	if err := getJSON(s.url("/api/v1/metadata"), &md); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct{ Type, Help, Unit string }{
		"rw2_jobs_done_total": {"counter", "Jobs finished.", ""},
		"rw2_queue_seconds":   {"histogram", "Time in the queue.", "seconds"},
	} {
		if got := md.Data[name]; len(got) != 1 || got[0] != want {
			t.Errorf("metadata of %s = %+v, want [%+v]", name, got, want)
		}
	}
	// A body that is not snappy is refused as a client error, not 500.
	resp, err := http.Post(s.url("/api/v1/write"), "application/x-protobuf;proto=io.prometheus.write.v2.Request", strings.NewReader("not snappy"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage remote-write body: status %d, want 400", resp.StatusCode)
	}
}

// TestMetadataFromOTLP sends OTLP/HTTP JSON metrics with descriptions and
// units (a counter and an exponential histogram) to the real server and
// reads their metadata back from /api/v1/metadata: the native histogram is
// typed histogram, and help and unit are what the sender gave.
func TestMetadataFromOTLP(t *testing.T) {
	s := startServer(t)
	now := time.Now().UnixNano()
	body := fmt.Sprintf(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"md"}}]},
	  "scopeMetrics":[{"metrics":[
	    {"name":"orders.placed","description":"Orders placed by customers.","unit":"1",
	     "sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asInt":"3","timeUnixNano":"%[1]d"}]}},
	    {"name":"checkout.latency","description":"Checkout latency.","unit":"s",
	     "exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"%[1]d","count":"2","sum":0.3,"scale":1,
	       "positive":{"offset":0,"bucketCounts":["1","1"]}}]}}
	  ]}]}]}`, now)
	resp, err := http.Post("http://"+s.otlpHTTP+"/v1/metrics", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP metrics: status %d", resp.StatusCode)
	}
	var md struct {
		Data map[string][]struct{ Type, Help, Unit string } `json:"data"`
	}
	if err := getJSON(s.url("/api/v1/metadata"), &md); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct{ Type, Help, Unit string }{
		"orders_placed_total":      {"counter", "Orders placed by customers.", ""},
		"checkout_latency_seconds": {"histogram", "Checkout latency.", "seconds"},
	} {
		if got := md.Data[name]; len(got) != 1 || got[0] != want {
			t.Errorf("metadata of %s = %+v, want [%+v]", name, got, want)
		}
	}
}
