package proxy

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestConfigEndpointGolden renders /config for a config read from a file
// and compares it with testdata/config.golden.json.
func TestConfigEndpointGolden(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "proxy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = "v9"
	p := &Proxy{cfg: cfg, ready: newReadyLatch()}
	mux := http.NewServeMux()
	p.RegisterRoutes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/config", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	golden := filepath.Join("testdata", "config.golden.json")
	if *update {
		if err := os.WriteFile(golden, rec.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("/config differs from %s (run with -update if intended):\n%s", golden, rec.Body.String())
	}
}
