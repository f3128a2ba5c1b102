package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestSidecarBinaryGRPC: the meshscope-proxy binary serves gRPC (HTTP/2
// with prior knowledge) with its own HTTP/2 server and forwards it with its
// own client: a unary call and a server stream through an outbound and an
// inbound proxy, counted as gRPC by both.
func TestSidecarBinaryGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	a := freeAddrs(t, 3)
	inbound, outbound, collector := a[0], a[1], a[2]
	_, inAdmin := startProxy(t, "grpc-inbound", "--service", "inventory", "--version", "v1",
		"--inbound", inbound+"="+ln.Addr().String(), "--collector", collector)
	_, outAdmin := startProxy(t, "grpc-outbound", "--service", "web", "--version", "v1",
		"--upstream", outbound+"=inventory@"+inbound, "--collector", collector)

	conn, err := grpc.NewClient(outbound, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 5 {
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check through two proxies: %v, %v", res, err)
		}
	}
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("first Watch message: %v, %v", first, err)
	}
	hs.SetServingStatus("inventory", healthpb.HealthCheckResponse_SERVING)
	next, err := watch.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("streamed Watch message: %v, %v", next, err)
	}

	for _, admin := range []string{outAdmin, inAdmin} {
		poll(t, 10*time.Second, "gRPC calls counted on "+admin, func() (bool, string) {
			v, ok, err := scrape("http://"+admin+"/metrics", "mesh_requests_total", `protocol="grpc"`)
			return err == nil && ok && v >= 5, "mesh_requests_total{protocol=\"grpc\"}"
		})
	}
}
