package demo

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestSummaryGolden renders the start-up summary for fixed addresses.
func TestSummaryGolden(t *testing.T) {
	var instances []*instance
	port := 20000
	next := func() string { port++; return fmt.Sprintf("127.0.0.1:%d", port) }
	for _, s := range Shop() {
		in := &instance{spec: s, appAddr: next(), outbound: map[string]string{}}
		if s.Meshed {
			in.inbound, in.admin = next(), next()
		} else {
			in.inbound = in.appAddr
		}
		instances = append(instances, in)
	}
	gw := &gatewaySetup{listen: "127.0.0.1:8443", admin: "127.0.0.1:8444", caFile: "data/demo/gateway/ca.crt",
		caPEM: []byte("-----BEGIN CERTIFICATE-----\n(the generated demo CA)\n-----END CERTIFICATE-----\n")}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"until-interrupted", Config{DataDir: "./data/demo", Rate: 20}},
		{"duration-no-load", Config{DataDir: "/var/demo", Rate: -1, Duration: 5 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printSummary(&b, tt.cfg, "127.0.0.1:7070", "127.0.0.1:4317", "127.0.0.1:4318", filepath.Join(tt.cfg.DataDir, "logs"), instances, gw)
			golden := filepath.Join("testdata", "summary-"+tt.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("summary differs from %s (run with -update to accept):\n%s", golden, b.String())
			}
		})
	}
}
