package topology

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// dialFrom opens the graph stream over a real WebSocket from the given
// loopback source address (so one test can be several client addresses).
func dialFrom(t *testing.T, url, from string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: 20 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	return d.Dial(url, nil)
}

// The stream accepts at most stream_max_clients clients and at most
// stream_max_clients_per_address from one address; the rest get 503 before
// the upgrade, counted by reason, and a freed slot is taken again.
func TestStreamClientCaps(t *testing.T) {
	top, _, reg := newTestTopology(t, Config{StreamMaxClients: 3, StreamMaxClientsPerAddress: 2})
	srv := serve(t, top)
	u := wsURL(srv, "")
	var open []*websocket.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	accept := func(from string) *websocket.Conn {
		t.Helper()
		c, resp, err := dialFrom(t, u, from)
		if err != nil {
			t.Fatalf("client from %s refused: %v (%v)", from, err, resp)
		}
		open = append(open, c)
		return c
	}
	refuse := func(from, want string) {
		t.Helper()
		c, resp, err := dialFrom(t, u, from)
		if err == nil {
			c.Close()
			t.Fatalf("client from %s accepted over the cap", from)
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("client from %s: %v %v, want 503", from, resp, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), want) || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("503 body %s (Retry-After %q), want it to name %s", b, resp.Header.Get("Retry-After"), want)
		}
	}
	refused := func(reason string) float64 {
		return testutil.ToFloat64(top.admit.refused.WithLabelValues(reason))
	}

	first := accept("127.0.0.1")
	accept("127.0.0.1")
	waitClients(t, top, 2)
	refuse("127.0.0.1", "stream_max_clients_per_address")
	if refused(refusedPerAddress) != 1 || refused(refusedTotal) != 0 {
		t.Fatalf("refused per address %v, total %v; want 1, 0", refused(refusedPerAddress), refused(refusedTotal))
	}
	accept("127.0.0.2")
	waitClients(t, top, 3)
	refuse("127.0.0.3", "stream_max_clients")
	if refused(refusedTotal) != 1 {
		t.Fatalf("refused total %v, want 1", refused(refusedTotal))
	}

	// A client that leaves frees its slot.
	first.Close()
	waitClients(t, top, 2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, _, err := dialFrom(t, u, "127.0.0.1")
		if err == nil {
			open = append(open, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after a client left: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitClients(t, top, 3)

	// The counter is exposed under its documented name.
	n, err := testutil.GatherAndCount(reg, "meshscope_topology_stream_refused_clients_total")
	if err != nil || n != 2 {
		t.Fatalf("gathered %d refused series (%v), want 2", n, err)
	}
}

func TestStreamCapsConfig(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.StreamMaxClients != DefaultStreamMaxClients || c.StreamMaxClientsPerAddress != DefaultStreamMaxClientsPerAddress {
		t.Fatalf("defaults %d/%d", c.StreamMaxClients, c.StreamMaxClientsPerAddress)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{StreamMaxClients: -1}, "stream_max_clients:"},
		{Config{StreamMaxClientsPerAddress: -5}, "stream_max_clients_per_address:"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", tc.cfg, err, tc.want)
		}
	}
}
