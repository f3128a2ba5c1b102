package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// NewH2C returns a Config.NewExchanger for cleartext HTTP/2 with prior
// knowledge (h2c): every Exchanger holds one HTTP/2 connection to addr,
// dialled before the run, and sends GET path on it with the given Host
// (empty: addr).
func NewH2C(addr, host, path string) func(ctx context.Context) (Exchanger, error) {
	if path == "" {
		path = "/"
	}
	if host == "" {
		host = addr
	}
	return func(ctx context.Context) (Exchanger, error) {
		var d net.Dialer
		first, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		h := &h2cExchanger{url: "http://" + addr + path, host: host}
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		h.tr = &http.Transport{
			Protocols:          &protos,
			DisableCompression: true,
			// The connection dialled above serves the run; a later dial
			// only replaces a broken one.
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				h.mu.Lock()
				c := first
				first = nil
				h.mu.Unlock()
				if c != nil {
					return c, nil
				}
				return d.DialContext(ctx, network, a)
			},
		}
		h.client = &http.Client{Transport: h.tr}
		return h, nil
	}
}

type h2cExchanger struct {
	url, host string
	tr        *http.Transport
	client    *http.Client
	mu        sync.Mutex
}

func (h *h2cExchanger) Exchange(ctx context.Context) (int, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Host = h.host
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil && resp.ProtoMajor != 2 {
		err = fmt.Errorf("response over %s, want HTTP/2", resp.Proto)
	}
	return resp.StatusCode, int(n), err
}

func (h *h2cExchanger) Close() error {
	h.tr.CloseIdleConnections()
	return nil
}

// NewGRPCHealth returns a Config.NewExchanger for gRPC unary calls: every
// Exchanger holds one gRPC client connection to addr (cleartext HTTP/2),
// ready before the run, and calls grpc.health.v1.Health/Check for service
// (empty: the server as a whole). A SERVING answer counts as status 200 with
// the response message's size as body bytes; any other answer is an error.
func NewGRPCHealth(addr, service string) func(ctx context.Context) (Exchanger, error) {
	return func(ctx context.Context) (Exchanger, error) {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("grpc client %s: %w", addr, err)
		}
		conn.Connect()
		for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
			if !conn.WaitForStateChange(ctx, s) {
				_ = conn.Close()
				return nil, fmt.Errorf("grpc connect %s: %w (state %s)", addr, ctx.Err(), s)
			}
		}
		return &grpcExchanger{conn: conn, client: healthpb.NewHealthClient(conn), req: &healthpb.HealthCheckRequest{Service: service}}, nil
	}
}

type grpcExchanger struct {
	conn   *grpc.ClientConn
	client healthpb.HealthClient
	req    *healthpb.HealthCheckRequest
}

func (g *grpcExchanger) Exchange(ctx context.Context) (int, int, error) {
	resp, err := g.client.Check(ctx, g.req)
	if err != nil {
		return 0, 0, fmt.Errorf("grpc: %w", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 0, 0, errors.New("grpc health: " + resp.GetStatus().String())
	}
	return http.StatusOK, proto.Size(resp), nil
}

func (g *grpcExchanger) Close() error { return g.conn.Close() }
