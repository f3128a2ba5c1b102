package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestExchangers(t *testing.T) {
	var h2Requests, h1Requests atomic.Int64
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2Requests.Add(1)
		} else {
			h1Requests.Add(1)
		}
		oneKB(w, r)
	}))
	h2.Config.Protocols = new(http.Protocols)
	h2.Config.Protocols.SetHTTP1(true)
	h2.Config.Protocols.SetUnencryptedHTTP2(true)
	h2.Start()
	defer h2.Close()
	h1only := httptest.NewServer(http.HandlerFunc(oneKB))
	defer h1only.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	gaddr := ln.Addr().String()

	tests := []struct {
		name      string
		ex        func(ctx context.Context) (Exchanger, error)
		wantBytes uint64 // per request
		wantErr   string // every request fails with this
	}{
		{"h2c", NewH2C(h2.Listener.Addr().String(), "", "/"), 1024, ""},
		{"h2c to an HTTP/1-only server", NewH2C(h1only.Listener.Addr().String(), "", "/"), 0, "http2"},
		{"grpc health", NewGRPCHealth(gaddr, ""), 2, ""},
		{"grpc health not serving", NewGRPCHealth(gaddr, "down"), 0, "NOT_SERVING"},
		{"grpc unknown service", NewGRPCHealth(gaddr, "nope"), 0, "NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Addr: "x", NewExchanger: tt.ex, Rate: 200, Connections: 2, Duration: 200 * time.Millisecond, Timeout: 2 * time.Second}
			res, err := RunConstantRate(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Requests + res.Errors; got != 40 {
				t.Errorf("recorded %d requests, want 40 (200 rps for 200 ms)", got)
			}
			if tt.wantErr != "" {
				if res.Requests != 0 || !strings.Contains(res.FirstError, tt.wantErr) {
					t.Errorf("%d ok, first error %q; want every request to fail with %q", res.Requests, res.FirstError, tt.wantErr)
				}
				return
			}
			if res.Errors != 0 || res.ResponseBytes != res.Requests*tt.wantBytes {
				t.Errorf("%d errors (%s), %d bytes for %d requests", res.Errors, res.FirstError, res.ResponseBytes, res.Requests)
			}
		})
	}
	if h2Requests.Load() != 40 || h1Requests.Load() != 0 {
		t.Errorf("h2c server saw %d HTTP/2 and %d HTTP/1 requests, want 40 and 0", h2Requests.Load(), h1Requests.Load())
	}
	if _, err := RunClosedLoop(context.Background(), Config{Addr: "x", NewExchanger: NewGRPCHealth("127.0.0.1:1", ""), Duration: time.Second, Timeout: 300 * time.Millisecond}); err == nil {
		t.Error("connecting to a closed port should fail before the run")
	}
}
