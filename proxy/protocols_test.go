package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP (x/net/http2).
func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestH2CThroughTwoProxies(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "proto=%d", r.ProtoMajor)
		w.Header().Set("X-Sum", "42")
	}))
	out, in, addr := meshPair(t, app, "", nil)
	resp, err := h2cClient().Get("http://" + addr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "proto=2" {
		t.Fatalf("client proto %d, body %q", resp.ProtoMajor, body)
	}
	if resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer lost: %v", resp.Trailer)
	}
	for _, p := range []*testProxy{out, in} {
		if got := p.waitValue(t, "mesh_requests_total", map[string]string{"protocol": "http2", "status_code": "200"}, 1); got != 1 {
			t.Errorf("http2 count %v", got)
		}
	}
}

func TestHTTP1KeepAliveChunkedTrailers(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Done")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "chunk%d;", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Done", "yes")
	}))
	_, _, addr := meshPair(t, app, "", nil)
	conns := 0
	tr := &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
		conns++
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}}
	client := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "chunk0;chunk1;chunk2;" || resp.Trailer.Get("X-Done") != "yes" || len(resp.TransferEncoding) == 0 {
			t.Fatalf("body %q trailer %v te %v", body, resp.Trailer, resp.TransferEncoding)
		}
	}
	if conns != 1 {
		t.Errorf("client opened %d connections, want 1 (keep-alive)", conns)
	}
}

// startGRPCApp serves the health (unary + server streaming) and reflection
// (bidi streaming) services.
func startGRPCApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func TestGRPCThroughTwoProxies(t *testing.T) {
	app := startGRPCApp(t)
	out, in, addr := meshPair(t, app, "", nil)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)

	// Unary OK.
	r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "catalog"})
	if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", r, err)
	}
	// Unary NOT_FOUND: a client error, so success as far as the server goes.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check(nope): %v", err)
	}
	// UNIMPLEMENTED: a server-side failure.
	if err := cc.Invoke(ctx, "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Invoke: %v", err)
	}
	// Server streaming.
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "catalog"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v %v", m, err)
	}
	// Bidi streaming: several requests and answers on one stream.
	rc, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		m, err := rc.Recv()
		if err != nil || len(m.GetListServicesResponse().GetService()) < 2 {
			t.Fatalf("reflection round %d: %v %v", i, m, err)
		}
	}
	_ = rc.CloseSend()
	if _, err := rc.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v", err)
	}
	cancel() // ends the Watch stream from the client side
	for _, p := range []*testProxy{out, in} {
		for _, c := range []struct {
			labels map[string]string
			want   float64
		}{
			{map[string]string{"protocol": "grpc", "grpc_status": "OK", "outcome": "success", "status_code": "200"}, 2}, // Check + reflection
			{map[string]string{"protocol": "grpc", "grpc_status": "NOT_FOUND", "outcome": "success"}, 1},
			{map[string]string{"protocol": "grpc", "grpc_status": "UNIMPLEMENTED", "outcome": "failure"}, 1},
		} {
			if got := p.waitValue(t, "mesh_requests_total", c.labels, c.want); got != c.want {
				t.Errorf("%v = %v, want %v", c.labels, got, c.want)
			}
		}
	}
	// The cancelled Watch stream is recorded once it ends.
	eventually(t, "watch stream recorded", func() bool {
		return in.value(t, "mesh_requests_total", map[string]string{"protocol": "grpc"}) == 5
	})
}

func TestWebSocketThroughTwoProxies(t *testing.T) {
	up := websocket.Upgrader{}
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo:"), m...)); err != nil {
				return
			}
		}
	}))
	out, in, addr := meshPair(t, app, "", nil)
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("m%d", i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != "echo:"+msg {
			t.Fatalf("got %q %v", got, err)
		}
	}
	c.Close()
	for _, p := range []*testProxy{out, in} {
		eventually(t, "websocket recorded", func() bool {
			return p.value(t, "mesh_requests_total", map[string]string{"protocol": "websocket", "status_code": "101", "outcome": "success"}) == 1
		})
	}
}

// startTCPServer accepts connections; if banner is set it speaks first,
// then it echoes every line in upper case.
func startTCPServer(t *testing.T, banner string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if banner != "" {
					_, _ = io.WriteString(c, banner+"\n")
				}
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					_, _ = io.WriteString(c, "ECHO "+line)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestOpaqueTCP(t *testing.T) {
	tests := []struct {
		name     string
		banner   string
		protocol string
		first    string // what the client sends first
	}{
		{name: "client speaks first, binary", first: "\x00\x01binary\n"},
		{name: "client speaks first, lower-case text", first: "hello there\n"},
		{name: "server speaks first, opaque override", banner: "220 smtp ready", protocol: ProtocolOpaque},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTCPServer(t, tt.banner)
			cfg := baseConfig("tcpclient")
			cfg.DetectTimeout = Duration(100 * time.Millisecond)
			cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "db", Addrs: []string{srv}, Protocol: tt.protocol}}
			p := startProxy(t, cfg)
			c, err := net.Dial("tcp", p.ListenAddrs()[0])
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			if tt.banner != "" {
				line, err := br.ReadString('\n')
				if err != nil || line != tt.banner+"\n" {
					t.Fatalf("banner %q %v", line, err)
				}
				tt.first = "after banner\n"
			}
			_, _ = io.WriteString(c, tt.first)
			line, err := br.ReadString('\n')
			if err != nil || line != "ECHO "+tt.first {
				t.Fatalf("echo %q %v", line, err)
			}
			labels := map[string]string{"direction": "outbound", "source_service": "tcpclient", "destination_service": "db", "protocol": "tcp"}
			if got := p.waitValue(t, "mesh_tcp_open_connections", labels, 1); got != 1 {
				t.Errorf("open connections %v", got)
			}
			c.Close()
			eventually(t, "connection closed", func() bool { return p.value(t, "mesh_tcp_open_connections", labels) == 0 })
			if got := p.waitValue(t, "mesh_tcp_connections_total", labels, 1); got != 1 {
				t.Errorf("connections total %v", got)
			}
			labels["flow"] = "sent"
			if got := p.waitValue(t, "mesh_tcp_bytes_total", labels, float64(len(tt.first))); got != float64(len(tt.first)) {
				t.Errorf("sent bytes %v, want %d", got, len(tt.first))
			}
		})
	}
}

func TestForwardProxy(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s", r.Host)
	}))
	_, port, _ := net.SplitHostPort(app)
	cfg := baseConfig("shopper")
	cfg.HTTPProxy = "127.0.0.1:0"
	cfg.Routes = map[string]string{"localhost": "catalog"}
	p := startProxy(t, cfg)
	proxyURL, _ := url.Parse("http://" + p.ListenAddrs()[0])
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}

	for host, svc := range map[string]string{"localhost": "catalog", "127.0.0.1": "external"} {
		resp, body := get(t, client, "http://"+net.JoinHostPort(host, port)+"/x", nil)
		if resp.StatusCode != 200 || body != "host="+net.JoinHostPort(host, port) {
			t.Fatalf("%s: %d %q", host, resp.StatusCode, body)
		}
		if got := p.waitValue(t, "mesh_requests_total", map[string]string{"direction": "outbound", "destination_service": svc, "source_service": "shopper"}, 1); got != 1 {
			t.Errorf("%s: destination %s count %v", host, svc, got)
		}
	}

	// CONNECT tunnels (as for https://) are opaque TCP to the named host.
	c, err := net.Dial("tcp", p.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT localhost:%s HTTP/1.1\r\nHost: localhost:%s\r\n\r\n", port, port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprintf(c, "GET /tunnel HTTP/1.1\r\nHost: inside\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	if string(body) != "host=inside" {
		t.Errorf("tunnel body %q", body)
	}
	if got := p.waitValue(t, "mesh_tcp_connections_total", map[string]string{"destination_service": "catalog"}, 1); got != 1 {
		t.Errorf("tunnel connection count %v", got)
	}

	// CONNECT to a closed port answers 502.
	c2, _ := net.Dial("tcp", p.ListenAddrs()[0])
	defer c2.Close()
	dead := freeAddr(t)
	fmt.Fprintf(c2, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dead, dead)
	resp, err = http.ReadResponse(bufio.NewReader(c2), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("CONNECT to closed port: %v %v", resp, err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshscope test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSALPN: with a certificate the proxy terminates TLS, negotiates h2 or
// http/1.1 by ALPN and records the request; without one TLS stays opaque.
func TestTLSALPN(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%d", r.ProtoMajor)
	}))
	certFile, keyFile, pool := writeCert(t)
	cfg := baseConfig("tlsapp")
	cfg.TLS = TLS{CertFile: certFile, KeyFile: keyFile}
	cfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app}}
	p := startProxy(t, cfg)
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, body := get(t, &http.Client{Transport: tr}, "https://"+p.ListenAddrs()[0]+"/", nil)
		want := 1
		if h2 {
			want = 2
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != want || body != fmt.Sprintf("proto=%d", want) {
			t.Errorf("h2=%v: %d proto %d body %q", h2, resp.StatusCode, resp.ProtoMajor, body)
		}
	}
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"protocol": "http2"}, 1); got != 1 {
		t.Errorf("http2 count %v", got)
	}
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"protocol": "http1"}, 1); got != 1 {
		t.Errorf("http1 count %v", got)
	}

	// No certificate: TLS passes through as opaque TCP to a TLS app.
	tlsApp := startTLSApp(t, certFile, keyFile)
	cfg2 := baseConfig("tlspass")
	cfg2.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "secure", Addrs: []string{tlsApp}}}
	p2 := startProxy(t, cfg2)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	resp, body := get(t, &http.Client{Transport: tr}, "https://"+p2.ListenAddrs()[0]+"/", nil)
	tr.CloseIdleConnections() // an idle opaque connection would hold the drain
	if resp.StatusCode != 200 || body != "secure" {
		t.Errorf("passthrough: %d %q", resp.StatusCode, body)
	}
	if got := p2.waitValue(t, "mesh_tcp_connections_total", map[string]string{"destination_service": "secure"}, 1); got != 1 {
		t.Errorf("passthrough connections %v", got)
	}
}

func startTLSApp(t *testing.T, certFile, keyFile string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("secure")) })}
	go func() { _ = srv.ServeTLS(ln, certFile, keyFile) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestGRPCSlowStreamNotTimedOut: a stream whose server sends headers only
// with a late first message is not cut by response_timeout.
func TestGRPCSlowStreamNotTimedOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var req healthpb.HealthCheckRequest
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // longer than response_timeout
		return stream.SendMsg(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
	}))
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	cfg := baseConfig("slowgrpc")
	cfg.ResponseTimeout = Duration(100 * time.Millisecond)
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "watcher", Addrs: []string{ln.Addr().String()}}}
	p := startProxy(t, cfg)
	cc, err := grpc.NewClient(p.ListenAddrs()[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/slow.Watcher/Watch")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(&healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseSend()
	var resp healthpb.HealthCheckResponse
	if err := st.RecvMsg(&resp); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("stream: %v %v", &resp, err)
	}
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"protocol": "grpc", "grpc_status": "OK", "outcome": "success"}, 1); got != 1 {
		t.Errorf("recorded %v", got)
	}
}

// TestForwardProxyToMeshService: a request for a host named like an
// --upstream service (or routed to one) goes to that upstream's addresses,
// even when the name does not resolve.
func TestForwardProxyToMeshService(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "inventory host=%s", r.Host)
	}))
	cfg := baseConfig("shop")
	cfg.HTTPProxy = "127.0.0.1:0"
	cfg.Routes = map[string]string{"stock.internal": "inventory"}
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "inventory", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	proxyURL, _ := url.Parse("http://" + p.ListenAddrs()[1])
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	for _, host := range []string{"inventory.invalid", "inventory", "stock.internal"} {
		resp, body := get(t, client, "http://"+host+"/x", nil)
		if host == "inventory.invalid" {
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("%s: %d, want 502 (unknown host is dialled as is)", host, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != 200 || body != "inventory host="+host {
			t.Errorf("%s: %d %q", host, resp.StatusCode, body)
		}
	}
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"destination_service": "inventory", "status_code": "200"}, 2); got != 2 {
		t.Errorf("inventory count %v", got)
	}
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"destination_service": "external", "status_code": "502"}, 1); got != 1 {
		t.Errorf("external count %v", got)
	}
	// CONNECT to the service name tunnels to the upstream.
	c, err := net.Dial("tcp", p.ListenAddrs()[1])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT inventory:443 HTTP/1.1\r\nHost: inventory:443\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: tunnelled\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	if string(body) != "inventory host=tunnelled" {
		t.Errorf("tunnel body %q", body)
	}
}

// TestH2CStreamNotHeldBack: the proxy holds a gRPC response's flushes only
// while the upstream's next bytes are already there
// (recorder.FlushError); a message the app flushed reaches the client
// while the app waits, through two proxies, before the app sends the next
// one.
func TestH2CStreamNotHeldBack(t *testing.T) {
	next := make(chan struct{})
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "X-Count")
		for i := range 3 {
			fmt.Fprintf(w, "message %d\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Second):
				return // the client never saw the message: held back
			}
		}
		w.Header().Set("X-Count", "3")
	}))
	_, _, addr := meshPair(t, app, "", nil)
	req, _ := http.NewRequest("POST", "http://"+addr+"/stream.Service/Watch", http.NoBody)
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("message %d\n", i) {
			t.Fatalf("message %d: %q, %v", i, line, err)
		}
		select {
		case next <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d arrived only after the app gave up waiting", i)
		}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the messages: %q, %v", rest, err)
	}
	if resp.Trailer.Get("X-Count") != "3" {
		t.Errorf("trailer %v", resp.Trailer)
	}
}
