//go:build unix

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// damageTraceID is the trace of batch i.
func damageTraceID(i int) string { return fmt.Sprintf("d0d0%028x", i+1) }

// postBatch sends one OTLP/JSON export of 10 spans of trace i (with 1 KB of
// random attribute text each, so segments fill) and requires a 200.
func postBatch(t *testing.T, otlpHTTP string, i int) {
	t.Helper()
	now := time.Now().UnixNano()
	var sp []string
	for j := range 10 {
		pad := make([]byte, 512)
		rand.Read(pad)
		sp = append(sp, fmt.Sprintf(`{"traceId":%q,"spanId":"%016x","name":"op","kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[{"key":"pad","value":{"stringValue":%q}}]}`,
			damageTraceID(i), j+1, now, now+1e6, hex.EncodeToString(pad)))
	}
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"damage"}}]},"scopeSpans":[{"spans":[` + strings.Join(sp, ",") + `]}]}]}`
	res, err := httpClient.Post("http://"+otlpHTTP+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("export %d: %v", i, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("export %d: HTTP %d", i, res.StatusCode)
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSealedSegmentDamageThroughServer: acknowledged spans go to a server
// with 256 KiB segments; with the server stopped one byte of a record in
// the middle of the first (sealed) segment is flipped. After a restart only
// that record's spans are missing, the sealed file is unchanged, and the
// loss shows in /metrics, /api/mesh/health and `meshscope check`; further
// restarts add no segment. A 64 KiB index cache makes the reads of the
// sealed segments' index files evict blocks through the real server.
func TestSealedSegmentDamageThroughServer(t *testing.T) {
	bin, _ := binaries(t)
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("traces:\n  embedded:\n    segment_bytes: 262144\n    index_cache_bytes: 65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *server {
		a := freeAddrs(t, 3)
		s := &server{http: a[0], otlpGRPC: a[1], otlpHTTP: a[2], data: data}
		s.proc = startProc(t, "meshscope-server", bin, "server", "--config", cfg,
			"--data", s.data, "--http", s.http, "--otlp-grpc", s.otlpGRPC, "--otlp-http", s.otlpHTTP)
		waitReady(t, s.proc, s.url("/ready"), 90*time.Second)
		return s
	}
	const batches = 120
	s := start()
	for i := range batches {
		postBatch(t, s.otlpHTTP, i)
	}
	s.stop(t, 30*time.Second)

	dir := filepath.Join(data, "traces")
	segs := segmentFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for off := 8; off+8 <= len(b); off += 8 + int(binary.LittleEndian.Uint32(b[off:])) {
		starts = append(starts, off)
	}
	if len(starts) < 8 {
		t.Fatalf("first segment holds %d records, want at least 8", len(starts))
	}
	// Records are the exports in order (each waited for its answer).
	hit := len(starts) / 2
	b[starts[hit]+8+200] ^= 0x20
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	s = start()
	missing := 0
	for i := range batches {
		var tr struct {
			SpanCount int `json:"span_count"`
		}
		code, body, err := get(s.url("/api/mesh/traces/" + damageTraceID(i)))
		switch {
		case err != nil:
			t.Fatal(err)
		case code == http.StatusNotFound:
			missing++
			if i != hit {
				t.Errorf("trace of export %d lost; only export %d was damaged", i, hit)
			}
		case code != http.StatusOK:
			t.Fatalf("trace %d: HTTP %d %s", i, code, body)
		default:
			if err := json.Unmarshal(body, &tr); err != nil || tr.SpanCount != 10 {
				t.Errorf("trace of export %d: %d spans (%v), want 10", i, tr.SpanCount, err)
			}
		}
	}
	t.Logf("after flipping one byte of record %d of %d in the first segment: %d of %d traces (%d of %d spans) readable",
		hit, len(starts), batches-missing, batches, 10*(batches-missing), 10*batches)
	if missing != 1 {
		t.Errorf("%d traces missing, want exactly the damaged one", missing)
	}
	if after, err := os.ReadFile(segs[0]); err != nil || !bytes.Equal(after, b) {
		t.Errorf("the sealed segment was modified at start (%v)", err)
	}
	if v, ok, err := scrape(s.url("/metrics"), "meshscope_collector_trace_store_corrupt_records_total"); err != nil || !ok || v != 1 {
		t.Errorf("corrupt records metric = %v (found %v, %v), want 1", v, ok, err)
	}
	var h struct {
		Status string `json:"status"`
		Stores map[string]struct {
			Damage string `json:"damage"`
		} `json:"stores"`
	}
	if err := getJSON(s.url("/api/mesh/health"), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status == "ok" || !strings.Contains(h.Stores["traces"].Damage, filepath.Base(segs[0])) {
		t.Errorf("health %q, traces damage %q; want not ok, naming %s", h.Status, h.Stores["traces"].Damage, filepath.Base(segs[0]))
	}
	out, err := runToExit(t, bin, "check", "--server", "http://"+s.http, "--min-proxies", "0")
	if err == nil || !strings.Contains(out, "damaged data") {
		t.Errorf("meshscope check: %v\n%s\nwant a failure naming the damaged data", err, out)
	}
	s.stop(t, 30*time.Second)

	n := len(segmentFiles(t, dir))
	for range 3 {
		s = start()
		s.stop(t, 30*time.Second)
	}
	if got := len(segmentFiles(t, dir)); got != n {
		t.Errorf("%d segments after 3 more restarts, %d before", got, n)
	}
}
