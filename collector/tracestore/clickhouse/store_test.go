package clickhouse

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/spans"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testConfig() Config {
	cfg := Defaults()
	cfg.DSN = "clickhouse://127.0.0.1:9000/traces"
	cfg.BatchTimeout = time.Millisecond
	cfg.RetryBackoff = time.Millisecond
	cfg.RetryMaxBackoff = 2 * time.Millisecond
	return cfg
}

func testSpans(n int) []spans.Span {
	out := make([]spans.Span, n)
	for i := range out {
		out[i] = spans.Span{TraceID: spans.TraceID{1, byte(i)}, SpanID: spans.SpanID{2, byte(i)}, Service: "web", Name: "GET /",
			StartUnixNano: time.Now().UnixNano(), EndUnixNano: time.Now().UnixNano() + 1000}
	}
	return out
}

func TestVersionRefusal(t *testing.T) {
	for _, c := range []struct {
		version string
		ok      bool
	}{
		{"18.16.1", false},
		{"23.7.6.111", false},
		{"23.8.1.2992", true},
		{"23.10.1", true},
		{"24.3.2.23", true},
		{"26.5.1.1", true},
		{"garbage", false},
	} {
		t.Run(c.version, func(t *testing.T) {
			f := &fakeConn{version: c.version}
			s, err := newStore(context.Background(), f, testConfig(), prometheus.NewRegistry(), nil)
			if c.ok {
				if err != nil {
					t.Fatalf("server %s refused: %v", c.version, err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("server %s accepted, want refusal", c.version)
			}
			if !strings.Contains(err.Error(), c.version) || !strings.Contains(err.Error(), MinServerVersion) {
				t.Fatalf("refusal %q does not name both %s and %s", err, c.version, MinServerVersion)
			}
			if len(f.execs) != 0 {
				t.Fatalf("refused server got statements: %v", f.execs)
			}
		})
	}
}

func TestBackpressureWhenInsertsHang(t *testing.T) {
	release := make(chan struct{})
	f := &fakeConn{version: "24.8", insertFn: func(ctx context.Context, rows [][]any) error {
		<-release
		return nil
	}}
	cfg := testConfig()
	cfg.QueueSpans, cfg.BatchSize, cfg.Inserters = 100, 50, 1
	reg := prometheus.NewRegistry()
	s, err := newStore(context.Background(), f, cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Two writers of 50 spans fill the queue (one insert in flight, one
	// batch waiting); the third is refused at once with ErrOverloaded.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.WriteSpans(context.Background(), testSpans(50)) }()
	}
	waitFor(t, func() bool { return testutil.ToFloat64(s.metrics.queueSpans) == 100 })
	err = s.WriteSpans(context.Background(), testSpans(1))
	if !errors.Is(err, consumer.ErrOverloaded) {
		t.Fatalf("write into a full queue: %v, want ErrOverloaded", err)
	}
	if got := testutil.ToFloat64(s.metrics.spansRefused); got != 1 {
		t.Fatalf("spans_refused_total = %v, want 1", got)
	}
	// Too big for the queue at all: refused too, never buffered.
	if err := s.WriteSpans(context.Background(), testSpans(101)); !errors.Is(err, consumer.ErrOverloaded) {
		t.Fatalf("write larger than the queue: %v, want ErrOverloaded", err)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if _, rows := f.stats(); rows != 100 {
		t.Fatalf("inserted %d rows, want 100", rows)
	}
	// Room again.
	if err := s.WriteSpans(context.Background(), testSpans(10)); err != nil {
		t.Fatal(err)
	}
}

func TestRetryableFailureBecomesOverload(t *testing.T) {
	f := &fakeConn{version: "24.8", insertFn: func(ctx context.Context, rows [][]any) error {
		return errors.New("code: 252, message: Too many parts (300). Merges are processing significantly slower than inserts: Code: 252")
	}}
	cfg := testConfig()
	cfg.MaxAttempts = 3
	s, err := newStore(context.Background(), f, cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.WriteSpans(context.Background(), testSpans(3))
	if !errors.Is(err, consumer.ErrOverloaded) {
		t.Fatalf("write while ClickHouse has too many parts: %v, want ErrOverloaded", err)
	}
	if n, _ := f.stats(); n != 3 {
		t.Fatalf("%d insert attempts, want 3 (max_attempts)", n)
	}
	if got := testutil.ToFloat64(s.metrics.insertErrors.WithLabelValues("retryable")); got != 3 {
		t.Fatalf("insert_errors_total{cause=retryable} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(s.metrics.spansFailed); got != 3 {
		t.Fatalf("spans_failed_total = %v, want 3", got)
	}
	if got := testutil.ToFloat64(s.metrics.queueSpans); got != 0 {
		t.Fatalf("queue_spans after failure = %v, want 0", got)
	}
}

func TestPermanentFailureIsNotRetried(t *testing.T) {
	f := &fakeConn{version: "24.8", insertFn: func(ctx context.Context, rows [][]any) error {
		return errors.New("Code: 53. DB::Exception: Type mismatch")
	}}
	s, err := newStore(context.Background(), f, testConfig(), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.WriteSpans(context.Background(), testSpans(2))
	if err == nil || errors.Is(err, consumer.ErrOverloaded) {
		t.Fatalf("write with a permanent error: %v, want a plain error", err)
	}
	if n, _ := f.stats(); n != 1 {
		t.Fatalf("%d insert attempts, want 1", n)
	}
}

func TestRecoversAfterTransientFailure(t *testing.T) {
	var mu sync.Mutex
	fails := 2
	f := &fakeConn{version: "24.8", insertFn: func(ctx context.Context, rows [][]any) error {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return fmt.Errorf("read: %w", context.DeadlineExceeded)
		}
		return nil
	}}
	s, err := newStore(context.Background(), f, testConfig(), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteSpans(context.Background(), testSpans(4)); err != nil {
		t.Fatalf("write that succeeds on the third attempt: %v", err)
	}
	if got := testutil.ToFloat64(s.metrics.inserts.WithLabelValues("retried")); got != 1 {
		t.Fatalf("inserts_total{result=retried} = %v, want 1", got)
	}
}

func TestConcurrentWritersShareBatches(t *testing.T) {
	f := &fakeConn{version: "24.8", insertFn: func(ctx context.Context, rows [][]any) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	}}
	cfg := testConfig()
	cfg.Inserters = 1
	cfg.BatchTimeout = 20 * time.Millisecond
	s, err := newStore(context.Background(), f, cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.WriteSpans(context.Background(), testSpans(5)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	inserts, rows := f.stats()
	if rows != 200 {
		t.Fatalf("inserted %d rows, want 200", rows)
	}
	if inserts >= 40 {
		t.Fatalf("%d inserts for 40 concurrent writers: writes were not grouped", inserts)
	}
}

func TestCloseFlushesAndRefusesLaterWrites(t *testing.T) {
	f := &fakeConn{version: "24.8"}
	cfg := testConfig()
	cfg.BatchTimeout = time.Hour // only Close or size flushes
	cfg.BatchSize = 1000
	s, err := newStore(context.Background(), f, cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WriteSpans(context.Background(), testSpans(3)) }()
	waitFor(t, func() bool { return testutil.ToFloat64(s.metrics.queueSpans) == 3 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write pending at Close: %v", err)
	}
	if _, rows := f.stats(); rows != 3 {
		t.Fatalf("Close flushed %d rows, want 3", rows)
	}
	if err := s.WriteSpans(context.Background(), testSpans(1)); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Config)
		key  string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"no dsn", func(c *Config) { c.DSN = "" }, "clickhouse.dsn"},
		{"bad dsn", func(c *Config) { c.DSN = "clickhouse://h:9000/db?dial_timeout=xyz" }, "clickhouse.dsn"},
		{"bad database", func(c *Config) { c.DSN = "clickhouse://h:9000/a-b" }, "clickhouse.dsn"},
		{"bad cluster", func(c *Config) { c.Cluster = "x y" }, "clickhouse.cluster"},
		{"short retention", func(c *Config) { c.Retention = time.Minute }, "clickhouse.retention"},
		{"negative batch", func(c *Config) { c.BatchSize = -1 }, "clickhouse.batch_size"},
		{"queue below batch", func(c *Config) { c.QueueSpans = 10; c.BatchSize = 100 }, "clickhouse.queue_spans"},
		{"negative inserters", func(c *Config) { c.Inserters = -2 }, "clickhouse.inserters"},
		{"backoff order", func(c *Config) { c.RetryBackoff = time.Second; c.RetryMaxBackoff = time.Millisecond }, "clickhouse.retry_max_backoff"},
		{"cluster", func(c *Config) { c.Cluster = "meshscope" }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			c.mod(&cfg)
			err := cfg.Validate()
			switch {
			case c.key == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case c.key != "" && (err == nil || !strings.HasPrefix(err.Error(), c.key+":")):
				t.Fatalf("Validate() = %v, want an error naming %s", err, c.key)
			}
		})
	}
}

// TestMigrationsGolden pins the rendered DDL (single server and cluster).
func TestMigrationsGolden(t *testing.T) {
	for _, c := range []struct {
		file string
		cfg  Config
	}{
		{"migrations_single.sql", Config{DSN: "clickhouse://h:9000/traces"}},
		{"migrations_cluster.sql", Config{DSN: "clickhouse://h:9000/traces", Cluster: "meshscope", Retention: 72 * time.Hour}},
		{"migrations_keep_forever.sql", Config{DSN: "clickhouse://h:9000/traces", KeepForever: true}},
	} {
		t.Run(c.file, func(t *testing.T) {
			var b strings.Builder
			if err := PrintMigrations(&b, c.cfg); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if b.String() != string(want) {
				t.Fatalf("%s differs from the rendered migrations (go test -update rewrites it):\n%s", path, b.String())
			}
		})
	}
	if v := LatestVersion(); v != len(Migrations(Config{})) {
		t.Fatalf("LatestVersion() = %d, want %d (versions must be 1..n)", v, len(Migrations(Config{})))
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt < 12; attempt++ {
		d := backoff(attempt, 100*time.Millisecond, 2*time.Second)
		if d < 75*time.Millisecond || d > 2500*time.Millisecond {
			t.Fatalf("backoff(%d) = %v, outside [75ms, 2.5s]", attempt, d)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
