package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/proxy/h2"
	"github.com/meshscope/meshscope/proxy/meshtls"
	"github.com/meshscope/meshscope/proxy/policy"
	"github.com/meshscope/meshscope/proxy/policy/chain"
)

// maxCallers bounds the distinct caller service/version names an inbound
// listener turns into label values.
const maxCallers = 512

// Proxy is one sidecar: its listeners, telemetry and admin endpoint.
type Proxy struct {
	cfg      Config
	logger   *slog.Logger
	gatherer prometheus.Gatherer
	metrics  *goldenMetrics // nil when golden metrics are disabled
	self     *selfMetrics
	tel      *telemetry
	tracing  bool
	routes   *routeTable
	limits   *limits
	callers  *callerSet
	tlsConf  *tls.Config
	mesh     *meshState // nil without mTLS (mesh.go)

	meshMember string   // tracestate member naming this proxy's service
	meshState  []string // []string{meshMember}, shared by requests without a tracestate

	transport http.RoundTripper
	policies  *chain.Engine    // nil without --control-plane
	policyRec *policy.Recorder // nil without --control-plane
	fast      *h1Transport     // lean path for bodyless HTTP/1.1 requests
	h1        *http.Transport
	h2c       *h2.Transport // HTTP/2 (h2c) requests other than gRPC
	grpc      *h2.Transport // gRPC: no response-header timeout
	dialer    *net.Dialer
	dial      func(ctx context.Context, network, addr string) (net.Conn, error) // dialer, with mTLS to meshed peers
	errorLog  *log.Logger
	bufPool   *bufferPool

	listeners []*listener
	services  map[string]*target // upstream targets by service name, for the forward proxy
	adminLn   net.Listener
	admin     *http.Server
	ready     *readyLatch
	draining  atomic.Bool
	inflight  sync.WaitGroup

	tcpMu    sync.Mutex
	tcpConns map[net.Conn]struct{}
	// tcpWG counts the accepted connections being detected or spliced
	// (from Accept until handleConn returns). tcpClosed, set under tcpMu
	// before the drain waits on tcpWG, makes later accepts close their
	// connection instead of adding to tcpWG while it is waited on.
	tcpWG     sync.WaitGroup
	tcpClosed bool
}

// New builds a proxy and binds every listener, so an address in use fails
// here with the flag that named it. reg receives the golden and self
// metrics; it is also what /metrics serves and what is pushed to the
// collector. A nil reg makes a private registry.
func New(cfg Config, reg *prometheus.Registry, logger *slog.Logger) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return build(cfg, reg, logger)
}

// build makes a proxy from a validated configuration and binds its listeners.
func build(cfg Config, reg *prometheus.Registry, logger *slog.Logger) (*Proxy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p := &Proxy{
		cfg:        cfg,
		logger:     logger,
		callers:    newCallerSet(maxCallers),
		ready:      newReadyLatch(),
		tcpConns:   map[net.Conn]struct{}{},
		services:   map[string]*target{},
		meshMember: meshStateKey + "=" + cfg.Service + "/" + cfg.Version,
		errorLog:   slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		bufPool:    newBufferPool(),
		meshState:  []string{meshStateKey + "=" + cfg.Service + "/" + cfg.Version},
		tracing:    !cfg.Telemetry.DisableTracing,
	}
	var err error
	if p.self, err = newSelfMetrics(reg, &cfg); err != nil {
		return nil, fmt.Errorf("register self-metrics: %w", err)
	}
	if !cfg.Telemetry.DisableMetrics {
		if p.metrics, err = newGoldenMetrics(reg); err != nil {
			return nil, fmt.Errorf("register golden metrics: %w", err)
		}
	}
	if p.limits, err = newLimits(&cfg, reg, logger); err != nil {
		return nil, fmt.Errorf("register limit metrics: %w", err)
	}
	runtimeReg := prometheus.NewRegistry()
	runtimeReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p.gatherer = prometheus.Gatherers{reg, runtimeReg}
	if p.routes, err = newRouteTable(cfg.RouteTemplates); err != nil {
		return nil, fmt.Errorf("route_templates: %w", err)
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		p.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	p.dialer = &net.Dialer{Timeout: time.Duration(cfg.ConnectTimeout), KeepAlive: 30 * time.Second}
	p.dial = p.dialer.DialContext
	if cfg.ControlPlane != "" && !cfg.NoMTLS {
		mt, err := meshtls.New(cfg.Service, reg, logger)
		if err != nil {
			return nil, err
		}
		p.mesh = &meshState{p: p, tls: mt}
		p.dial = mt.WrapDial(p.dialer.DialContext)
	}
	h1dial := wrapOrderDial(p.dial) // HTTP/1.1 heads keep the client's field order (headorder.go)
	p.h1 = &http.Transport{
		DialContext:           h1dial,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       time.Duration(cfg.IdleTimeout),
		ResponseHeaderTimeout: time.Duration(cfg.ResponseTimeout),
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	p.h2c = &h2.Transport{
		Dial:                  rawDial(p.dial),
		IdleConnTimeout:       time.Duration(cfg.IdleTimeout),
		ResponseHeaderTimeout: time.Duration(cfg.ResponseTimeout),
	}
	// gRPC carries its own deadline (grpc-timeout) and servers may send
	// response headers only with the first message of a long stream, so the
	// response-header timeout does not apply to it.
	p.grpc = &h2.Transport{Dial: p.h2c.Dial, IdleConnTimeout: p.h2c.IdleConnTimeout}
	p.fast = newH1Transport(h1dial, time.Duration(cfg.ResponseTimeout), time.Duration(cfg.IdleTimeout), 256, 1024)
	p.transport = protoSwitch{fast: p.fast, h1: p.h1, h2: p.h2c, grpc: p.grpc}
	if cfg.ControlPlane != "" {
		if p.policyRec, err = policy.NewRecorder(reg); err != nil {
			return nil, fmt.Errorf("register policy metrics: %w", err)
		}
		static := map[string][]string{}
		for _, up := range cfg.Upstreams {
			static[up.Service] = append(static[up.Service], up.Addrs...)
		}
		var apps []string
		for _, in := range cfg.Inbound {
			apps = append(apps, in.App)
		}
		p.policies = chain.New(cfg.Service, cfg.Mode == ModeEnforce, static, apps, p.transport, logger)
		p.transport = p.policies
	}

	token, err := auth.ClientToken(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	serverTLS, err := auth.ClientTLS("--server-ca", cfg.ServerCA)
	if err != nil {
		return nil, err
	}
	p.tel = newTelemetry(&cfg, token, serverTLS, reg, p.self, logger)
	if err := p.bind(); err != nil {
		p.closeListeners()
		_ = p.tel.shutdown(context.Background())
		return nil, err
	}
	return p, nil
}

// rawDial makes the plain TCP connections dial returns use raw socket
// I/O (rawconn_linux.go): an HTTP/2 upstream connection's reads and writes
// (a few per request) then do not wake the runtime's monitor thread.
func rawDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawIO(c), nil
	}
}

// protoSwitch sends HTTP/2 requests (h2c, gRPC) over HTTP/2 prior
// knowledge and everything else over HTTP/1.1: bodyless replayable
// requests over the lean h1Transport, the rest over http.Transport.
type protoSwitch struct {
	fast         *h1Transport
	h1, h2, grpc http.RoundTripper
}

func (s protoSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	if h1Eligible(r) {
		return s.fast.RoundTrip(r)
	}
	if r.ProtoMajor == 2 {
		if isGRPC(r) {
			return s.grpc.RoundTrip(r)
		}
		return s.h2.RoundTrip(r)
	}
	return s.h1.RoundTrip(withOrderTrace(r))
}

// bind opens every listener.
func (p *Proxy) bind() error {
	for _, in := range p.cfg.Inbound {
		t := &target{kind: "inbound", direction: dirInbound, dstService: p.cfg.Service, dstVersion: p.cfg.Version,
			addrs: []string{in.App}, spanKind: trace.SpanKindServer}
		if err := p.addListener("--inbound", in.Listen, in.Protocol, t); err != nil {
			return err
		}
	}
	for _, up := range p.cfg.Upstreams {
		t := &target{kind: "outbound", direction: dirOutbound, dstService: up.Service, dstVersion: versionUnknown,
			addrs: up.Addrs, spanKind: trace.SpanKindClient}
		if p.policies != nil && up.Protocol == ProtocolOpaque {
			// Only declared-opaque listeners splice to discovered
			// endpoints: on an auto listener a silent connection (say, a
			// client's spare keep-alive dial) is closed, not kept open.
			t.discover = p.policies.Addr
		}
		if err := p.addListener("--upstream", up.Listen, up.Protocol, t); err != nil {
			return err
		}
		if _, dup := p.services[up.Service]; !dup {
			p.services[up.Service] = t
		}
	}
	if p.cfg.HTTPProxy != "" {
		t := &target{kind: "forward", direction: dirOutbound, spanKind: trace.SpanKindClient}
		if err := p.addListener("--http-proxy", p.cfg.HTTPProxy, ProtocolHTTP, t); err != nil {
			return err
		}
	}
	if p.cfg.Admin != "" {
		ln, err := net.Listen("tcp", p.cfg.Admin)
		if err != nil {
			return fmt.Errorf("--admin %s: %w", p.cfg.Admin, err)
		}
		p.adminLn = ln
		mux := http.NewServeMux()
		p.RegisterRoutes(mux)
		p.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

func (p *Proxy) closeListeners() {
	for _, l := range p.listeners {
		_ = l.ln.Close()
	}
	if p.adminLn != nil {
		_ = p.adminLn.Close()
	}
}

// Policies is the traffic-policy engine the control-plane client feeds;
// nil without --control-plane.
func (p *Proxy) Policies() *chain.Engine { return p.policies }

// AdminAddr is the bound admin address (useful with port 0).
func (p *Proxy) AdminAddr() string {
	if p.adminLn == nil {
		return ""
	}
	return p.adminLn.Addr().String()
}

// ListenAddrs returns the bound listener addresses in configuration order:
// inbound, upstreams, then the forward proxy.
func (p *Proxy) ListenAddrs() []string {
	out := make([]string, len(p.listeners))
	for i, l := range p.listeners {
		out[i] = l.ln.Addr().String()
	}
	return out
}

// Ready is closed once every listener serves.
func (p *Proxy) Ready() <-chan struct{} { return p.ready.ch }

// readyLatch is closed once, when the listeners serve.
type readyLatch struct {
	once sync.Once
	ch   chan struct{}
}

func newReadyLatch() *readyLatch { return &readyLatch{ch: make(chan struct{})} }

func (r *readyLatch) Set() { r.once.Do(func() { close(r.ch) }) }

func (r *readyLatch) IsSet() bool {
	select {
	case <-r.ch:
		return true
	default:
		return false
	}
}

// RegisterRoutes adds the admin endpoints: /metrics, /ready, /live, /config.
func (p *Proxy) RegisterRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !p.ready.IsSet() || p.draining.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(p.cfg)
	})
	if p.policies != nil {
		mux.HandleFunc("GET /policy/endpoints", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"version": p.policies.Version(), "endpoints": p.policies.Endpoints(time.Now())})
		})
	}
}

// Run serves until ctx is cancelled, then stops accepting, drains in-flight
// requests and connections (bounded by drain_timeout), flushes telemetry and
// returns.
func (p *Proxy) Run(ctx context.Context) error {
	errc := make(chan error, len(p.listeners)+1)
	var serving sync.WaitGroup
	for _, l := range p.listeners {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := l.serve(); err != nil {
				errc <- err
			}
		}()
	}
	if p.admin != nil {
		go func() {
			if err := p.admin.Serve(p.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin %s: %w", p.cfg.Admin, err)
			}
		}()
	}
	p.ready.Set()
	p.logger.Info("proxy ready", "version", p.cfg.Version, "mode", p.cfg.Mode,
		"listeners", p.ListenAddrs(), "admin", p.AdminAddr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	p.drain()
	serving.Wait()

	flushCtx, cancel := context.WithTimeout(context.Background(), 2*p.tel.timeout+time.Second)
	defer cancel()
	if err := p.tel.shutdown(flushCtx); err != nil {
		p.logger.Warn("telemetry flush incomplete", "err", err)
	}
	if p.admin != nil {
		_ = p.admin.Close()
	}
	p.fast.CloseIdleConnections()
	p.h1.CloseIdleConnections()
	_ = p.h2c.Close()
	_ = p.grpc.Close()
	if p.policies != nil {
		p.policies.Close()
	}
	return runErr
}

// drain stops accepting and waits for in-flight work up to drain_timeout,
// then closes what is left.
func (p *Proxy) drain() {
	p.draining.Store(true)
	deadline := time.Duration(p.cfg.DrainTimeout)
	p.logger.Info("draining", "timeout", deadline)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for _, l := range p.listeners {
		l.stopAccepting()
	}
	var wg sync.WaitGroup
	for _, l := range p.listeners {
		wg.Add(1)
		l.owned.closeIdle()
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				_ = l.srv.Close()
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.h2.Shutdown(ctx) // closes what is left when ctx ends
		}()
	}
	wg.Wait()
	// Connections accepted before the listeners closed are counted in
	// tcpWG; from here on none is added.
	p.tcpMu.Lock()
	p.tcpClosed = true
	p.tcpMu.Unlock()
	done := make(chan struct{})
	go func() {
		p.inflight.Wait() // hijacked (WebSocket) requests are not tracked by http.Server
		p.tcpWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.logger.Warn("drain timeout reached; closing remaining connections")
		for _, l := range p.listeners {
			_ = l.srv.Close()
		}
		p.tcpMu.Lock()
		for c := range p.tcpConns {
			_ = c.Close()
		}
		p.tcpMu.Unlock()
		select { // upgraded connections the server no longer tracks may linger
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

// bufferPool recycles ReverseProxy copy buffers through a bounded free
// list (a channel: unlike sync.Pool, putting a slice back does not
// allocate).
type bufferPool struct{ free chan []byte }

const (
	copyBufferSize  = 32 * 1024
	freeCopyBuffers = 32
)

func newBufferPool() *bufferPool { return &bufferPool{free: make(chan []byte, freeCopyBuffers)} }

func (b *bufferPool) Get() []byte {
	select {
	case buf := <-b.free:
		return buf
	default:
		return make([]byte, copyBufferSize)
	}
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferSize {
		return
	}
	select {
	case b.free <- buf[:copyBufferSize]:
	default:
	}
}
