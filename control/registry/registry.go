package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
)

// Config tunes the registry.
type Config struct {
	// Grace is how long a disconnected proxy's endpoints stay. Default 30s.
	Grace time.Duration `yaml:"endpoint_grace"`
}

// DefaultGrace is the default Config.Grace.
const DefaultGrace = 30 * time.Second

// Validate names the bad field.
func (c Config) Validate() error {
	if c.Grace < 0 {
		return errors.New("endpoint_grace: must not be negative")
	}
	return nil
}

// Policies is where the registry reads the policy set from.
type Policies interface {
	// Snapshot returns the current version and every document.
	Snapshot() (uint64, []policy.Document)
}

// Signer signs a proxy's certificate request for its service; req is the
// stream's HTTP upgrade request (its credentials). Nil: no certificates.
type Signer interface {
	SignProxyCert(ctx context.Context, req *http.Request, service string, csrPEM []byte) (*wire.Cert, error)
}

// MinPushInterval is the shortest time between two snapshots to one proxy.
const MinPushInterval = 100 * time.Millisecond

// helloTimeout bounds the wait for a new stream's hello.
const helloTimeout = 10 * time.Second

// Registry tracks proxies and pushes them config. Run it as a lifecycle
// runner and serve Handler at wire.Path.
type Registry struct {
	cfg      Config
	logger   *slog.Logger
	policies Policies
	changes  <-chan struct{}
	upgrader websocket.Upgrader
	now      func() time.Time

	mu            sync.Mutex
	policyVersion uint64
	byService     map[string][]policy.Document
	proxies       map[string]*proxy
	// reports[endpoint][proxy id] is what a caller says about an endpoint.
	reports    map[epKey]map[string]wire.EndpointStatus
	generation uint64
	closed     bool
	conns      sync.WaitGroup

	connected  prometheus.Gauge
	endpoints  prometheus.Gauge
	snapshots  prometheus.Counter
	streams    *prometheus.CounterVec
	pushErrors prometheus.Counter

	signer Signer

	publisher Publisher       // nil: a server of its own
	peers     map[string]Peer // proxies at the other servers, by id
}

// SetSigner sets who signs proxy certificates; call before serving.
func (r *Registry) SetSigner(s Signer) { r.signer = s }

type epKey struct{ service, address string }

type proxy struct {
	hello        wire.Hello
	services     map[string]bool // its upstreams and its own service: policies
	upstreams    map[string]bool // its upstreams: endpoints
	conn         *conn           // nil while disconnected
	connectedAt  time.Time
	disconnected time.Time
	status       wire.Status
	statusAt     time.Time
}

type conn struct {
	ws    *websocket.Conn
	req   *http.Request
	out   chan []byte // messages other than snapshots (cert answers)
	dirty chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func (c *conn) markDirty() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// New returns a registry reading policies from p; changes signals that the
// policy set changed (store.Subscribe).
func New(cfg Config, p Policies, changes <-chan struct{}, reg prometheus.Registerer, logger *slog.Logger) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	r := &Registry{
		cfg:       cfg,
		logger:    logger,
		policies:  p,
		changes:   changes,
		now:       time.Now,
		byService: map[string][]policy.Document{},
		proxies:   map[string]*proxy{},
		reports:   map[epKey]map[string]wire.EndpointStatus{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_control_proxies_connected", Help: "Proxies connected to the control plane.",
		}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_control_endpoints", Help: "Endpoints in the registry (connected or within the grace period).",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_control_snapshots_sent_total", Help: "Config snapshots sent to proxies.",
		}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_control_streams_total", Help: "Proxy streams opened, by result (accepted, rejected).",
		}, []string{"result"}),
		pushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_control_push_errors_total", Help: "Failed writes to proxy streams (the stream is then closed).",
		}),
	}
	r.upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 16384, HandshakeTimeout: helloTimeout}
	for _, c := range []prometheus.Collector{r.connected, r.endpoints, r.snapshots, r.streams, r.pushErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering registry metrics: %w", err)
		}
	}
	r.loadPolicies()
	return r, nil
}

// Run pushes policy changes, expires endpoints and ejections, and on
// cancel closes every stream.
func (r *Registry) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	changes := r.changes
	for {
		select {
		case <-ctx.Done():
			r.shutdown()
			return nil
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			r.loadPolicies()
		case <-tick.C:
			r.expire()
		}
	}
}

func (r *Registry) shutdown() {
	r.mu.Lock()
	r.closed = true
	for _, p := range r.proxies {
		if p.conn != nil {
			_ = p.conn.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "server stopping"), time.Now().Add(time.Second))
			p.conn.close()
		}
	}
	r.mu.Unlock()
	r.conns.Wait()
}

// loadPolicies reads the policy set and marks the services whose policies
// changed.
func (r *Registry) loadPolicies() {
	version, docs := r.policies.Snapshot()
	by := map[string][]policy.Document{}
	for _, d := range docs {
		by[d.Service] = append(by[d.Service], d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := map[string]bool{}
	for svc, list := range by {
		if !sameDocs(r.byService[svc], list) {
			changed[svc] = true
		}
	}
	for svc := range r.byService {
		if _, ok := by[svc]; !ok {
			changed[svc] = true
		}
	}
	r.byService = by
	for _, p := range r.proxies {
		r.gatewayServicesLocked(p)
	}
	if version != r.policyVersion {
		r.policyVersion = version
		// Every proxy learns the new version, even if its services did
		// not change, so that "applied version" converges everywhere.
		r.markAllLocked()
		return
	}
	r.markPoliciesLocked(changed)
}

// gatewayServicesLocked sets what proxy p calls: the upstreams of its
// hello plus, for an ingress gateway, the services its Gateway document's
// routes name (so it gets their endpoints without knowing them in advance).
func (r *Registry) gatewayServicesLocked(p *proxy) {
	services := map[string]bool{p.hello.Service: true}
	upstreams := map[string]bool{}
	for _, u := range p.hello.Upstreams {
		services[u], upstreams[u] = true, true
	}
	for i := range r.byService[p.hello.Service] {
		g := r.byService[p.hello.Service][i].Gateway()
		if g == nil {
			continue
		}
		for _, rt := range g.Routes {
			if name, addrs, err := policy.ParseGatewayService(rt.Service); err == nil && len(addrs) == 0 {
				services[name], upstreams[name] = true, true
			}
		}
	}
	p.services, p.upstreams = services, upstreams
}

func sameDocs(a, b []policy.Document) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Meta == b[i].Meta && a[i].Spec == b[i].Spec && a[i].Spec != nil {
			continue // the store's documents are immutable: same spec, same content
		}
		if !policy.Equal(&a[i], &b[i]) {
			return false
		}
	}
	return true
}

// markLocked queues a snapshot for every connected proxy that calls one
// of services (their endpoints changed).
func (r *Registry) markLocked(services map[string]bool) {
	r.markWhere(services, func(p *proxy) map[string]bool { return p.upstreams })
}

// markPoliciesLocked queues a snapshot for every connected proxy that
// calls or is one of services (their policies changed).
func (r *Registry) markPoliciesLocked(services map[string]bool) {
	r.markWhere(services, func(p *proxy) map[string]bool { return p.services })
}

func (r *Registry) markWhere(services map[string]bool, of func(*proxy) map[string]bool) {
	if len(services) == 0 {
		return
	}
	r.generation++
	for _, p := range r.proxies {
		if p.conn == nil {
			continue
		}
		set := of(p)
		for s := range services {
			if set[s] {
				p.conn.markDirty()
				break
			}
		}
	}
}

func (r *Registry) markAllLocked() {
	r.generation++
	for _, p := range r.proxies {
		if p.conn != nil {
			p.conn.markDirty()
		}
	}
}

// expire drops proxies disconnected for longer than the grace period and
// ejections whose time has passed.
func (r *Registry) expire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	changed := map[string]bool{}
	for id, p := range r.proxies {
		if p.conn == nil && now.Sub(p.disconnected) >= r.cfg.Grace {
			delete(r.proxies, id)
			r.publishLocked(id, nil)
			if len(p.hello.Inbound) > 0 {
				changed[p.hello.Service] = true
			}
			r.logger.Info("proxy left the registry", "proxy_id", id, "service", p.hello.Service, "after", r.cfg.Grace)
		}
	}
	for k, byProxy := range r.reports {
		for id, st := range byProxy {
			if st.Ejected && !st.Until.IsZero() && !now.Before(st.Until) {
				// The ejection ran out: callers learn it now, not at the
				// next unrelated change.
				st.Ejected, st.Reason = false, ""
				byProxy[id] = st
				changed[k.service] = true
			}
		}
	}
	r.endpoints.Set(float64(r.countEndpointsLocked()))
	r.markLocked(changed)
}

func (r *Registry) countEndpointsLocked() int {
	n := 0
	for _, p := range r.proxies {
		n += len(p.hello.Inbound)
	}
	return n
}

// Handler serves the proxy stream at wire.Path.
func (r *Registry) Handler() http.Handler { return http.HandlerFunc(r.serveStream) }

func (r *Registry) serveStream(w http.ResponseWriter, req *http.Request) {
	ws, err := r.upgrader.Upgrade(w, req, nil)
	if err != nil {
		r.streams.WithLabelValues("rejected").Inc()
		return // the upgrader answered
	}
	ws.SetReadLimit(wire.MaxProxyMessage)
	c := &conn{ws: ws, req: req, out: make(chan []byte, 2), dirty: make(chan struct{}, 1), done: make(chan struct{})}
	hello, err := readHello(ws)
	if err != nil {
		r.streams.WithLabelValues("rejected").Inc()
		r.logger.Warn("rejected proxy stream", "remote", req.RemoteAddr, "err", err)
		r.sendError(c, err.Error())
		return
	}
	if !r.register(hello, c) {
		r.sendError(c, "server stopping")
		return
	}
	r.streams.WithLabelValues("accepted").Inc()
	defer r.conns.Done()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		r.writeLoop(hello.ProxyID, c)
	}()
	r.readLoop(hello.ProxyID, c)
	c.close()
	<-writerDone
	r.unregister(hello.ProxyID, c)
}

func (r *Registry) sendError(c *conn, msg string) {
	if b, err := wire.Encode(&wire.Error{Message: msg}); err == nil {
		_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.ws.WriteMessage(websocket.TextMessage, b)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncate(msg, 120)), time.Now().Add(time.Second))
	}
	c.close()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func readHello(ws *websocket.Conn) (*wire.Hello, error) {
	_ = ws.SetReadDeadline(time.Now().Add(helloTimeout))
	typ, data, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("reading hello: %w", err)
	}
	if typ != websocket.TextMessage {
		return nil, errors.New("hello: want a JSON text message")
	}
	msg, err := wire.Decode(data)
	if err != nil {
		return nil, err
	}
	h, ok := msg.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("first message must be a hello, got %T", msg)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// register adds or revives a proxy; a proxy id already connected has its
// old stream closed. It reports false once the registry is shut down.
func (r *Registry) register(h *wire.Hello, c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns.Add(1)
	services := map[string]bool{h.Service: true}
	upstreams := map[string]bool{}
	for _, u := range h.Upstreams {
		services[u] = true
		upstreams[u] = true
	}
	old, existed := r.proxies[h.ProxyID]
	if existed && old.conn != nil {
		r.logger.Info("proxy reconnected; closing its old stream", "proxy_id", h.ProxyID)
		old.conn.close()
	}
	p := &proxy{hello: *h, services: services, upstreams: upstreams, conn: c, connectedAt: r.now()}
	r.gatewayServicesLocked(p)
	if existed {
		p.status = old.status
		p.statusAt = old.statusAt
	}
	r.proxies[h.ProxyID] = p
	r.publishLocked(h.ProxyID, p)
	changed := map[string]bool{}
	if !existed || !sameEndpoint(&old.hello, h) {
		if existed {
			changed[old.hello.Service] = true
		}
		if len(h.Inbound) > 0 {
			changed[h.Service] = true
		}
	}
	r.markLocked(changed)
	c.markDirty() // its first snapshot
	r.connected.Set(float64(r.countConnectedLocked()))
	r.endpoints.Set(float64(r.countEndpointsLocked()))
	r.logger.Info("proxy registered", "proxy_id", h.ProxyID, "service", h.Service, "version", h.Version,
		"inbound", h.Inbound, "upstreams", len(h.Upstreams), "mode", h.Mode, "has_version", h.ConfigVersion)
	return true
}

func sameEndpoint(a, b *wire.Hello) bool {
	if a.Service != b.Service || a.Version != b.Version || a.Mode != b.Mode || len(a.Inbound) != len(b.Inbound) || !slices.Equal(a.MTLS, b.MTLS) {
		return false
	}
	for i := range a.Inbound {
		if a.Inbound[i] != b.Inbound[i] {
			return false
		}
	}
	return true
}

func (r *Registry) countConnectedLocked() int {
	n := 0
	for _, p := range r.proxies {
		if p.conn != nil {
			n++
		}
	}
	return n
}

// unregister marks the proxy disconnected (if c is still its stream) and
// drops what it reported about other endpoints.
func (r *Registry) unregister(id string, c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.proxies[id]
	if !ok || p.conn != c {
		return
	}
	p.conn = nil
	p.disconnected = r.now()
	changed := r.setReportsLocked(id, nil)
	r.markLocked(changed)
	r.connected.Set(float64(r.countConnectedLocked()))
	r.logger.Info("proxy disconnected", "proxy_id", id, "service", p.hello.Service, "grace", r.cfg.Grace)
}

func (r *Registry) readLoop(id string, c *conn) {
	ws := c.ws
	_ = ws.SetReadDeadline(time.Now().Add(wire.PongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wire.PongWait)) })
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && !isClosed(c) {
				r.logger.Debug("proxy stream ended", "proxy_id", id, "err", err)
			}
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(wire.PongWait))
		if typ != websocket.TextMessage {
			continue
		}
		msg, err := wire.Decode(data)
		if errors.Is(err, wire.ErrUnknownType) {
			continue
		}
		if err != nil {
			r.logger.Warn("bad message from proxy; closing its stream", "proxy_id", id, "err", err)
			r.sendError(c, err.Error())
			return
		}
		switch m := msg.(type) {
		case *wire.Status:
			r.setStatus(id, c, m)
		case *wire.CertRequest:
			r.signCert(id, c, m)
		}
	}
}

// signCert answers a certificate request on the stream's writer.
func (r *Registry) signCert(id string, c *conn, m *wire.CertRequest) {
	r.mu.Lock()
	p, ok := r.proxies[id]
	service := ""
	if ok {
		service = p.hello.Service
	}
	r.mu.Unlock()
	var ans *wire.Cert
	if r.signer == nil {
		ans = &wire.Cert{Error: "this server issues no certificates"}
	} else {
		var err error
		ans, err = r.signer.SignProxyCert(c.req.Context(), c.req, service, []byte(m.CSR))
		if err != nil {
			r.logger.Warn("certificate request refused", "proxy_id", id, "service", service, "err", err)
			ans = &wire.Cert{Error: err.Error()}
		}
	}
	b, err := wire.Encode(ans)
	if err != nil {
		return
	}
	select {
	case c.out <- b:
	case <-c.done:
	}
}

func isClosed(c *conn) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (r *Registry) writeLoop(id string, c *conn) {
	ping := time.NewTicker(wire.PingInterval)
	defer ping.Stop()
	var lastPush time.Time
	for {
		select {
		case <-c.done:
			return
		case b := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(wire.WriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				r.pushErrors.Inc()
				c.close()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wire.WriteWait)); err != nil {
				c.close()
				return
			}
		case <-c.dirty:
			// At most one snapshot per MinPushInterval: changes arriving
			// meanwhile (a burst of proxies joining) go out together.
			if wait := MinPushInterval - time.Since(lastPush); wait > 0 {
				select {
				case <-c.done:
					return
				case <-time.After(wait):
				}
				select {
				case <-c.dirty:
				default:
				}
			}
			lastPush = time.Now()
			snap, ok := r.snapshotFor(id, c)
			if !ok {
				return
			}
			b, err := wire.Encode(snap)
			if err != nil {
				r.logger.Error("encoding snapshot", "proxy_id", id, "err", err)
				continue
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(wire.WriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				r.pushErrors.Inc()
				r.logger.Warn("pushing snapshot failed; closing the stream", "proxy_id", id, "err", err)
				c.close()
				return
			}
			r.snapshots.Inc()
		}
	}
}

// setStatus stores a proxy's status and marks the services whose endpoint
// health or ejection it changes.
func (r *Registry) setStatus(id string, c *conn, st *wire.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.proxies[id]
	if !ok || p.conn != c {
		return
	}
	changed := map[string]bool{}
	health := normHealth(p.status.Health) != normHealth(st.Health)
	if health && len(p.hello.Inbound) > 0 {
		changed[p.hello.Service] = true
	}
	p.status = *st
	if health {
		r.publishLocked(id, p)
	}
	p.statusAt = r.now()
	for s := range r.setReportsLocked(id, st.Endpoints) {
		changed[s] = true
	}
	r.markLocked(changed)
}

// setReportsLocked replaces what proxy id reports about endpoints and
// returns the services where that changes something.
func (r *Registry) setReportsLocked(id string, eps []wire.EndpointStatus) map[string]bool {
	changed := map[string]bool{}
	fresh := map[epKey]wire.EndpointStatus{}
	for _, e := range eps {
		fresh[epKey{e.Service, e.Address}] = e
	}
	for k, byProxy := range r.reports {
		old, had := byProxy[id]
		if !had {
			continue
		}
		if nw, still := fresh[k]; !still || nw.Ejected != old.Ejected || normHealth(nw.Health) != normHealth(old.Health) {
			changed[k.service] = true
		}
		delete(byProxy, id)
		if len(byProxy) == 0 {
			delete(r.reports, k)
		}
	}
	for k, e := range fresh {
		byProxy := r.reports[k]
		if byProxy == nil {
			byProxy = map[string]wire.EndpointStatus{}
			r.reports[k] = byProxy
		}
		if _, was := changed[k.service]; !was && (e.Ejected || normHealth(e.Health) != wire.HealthUnknown) {
			changed[k.service] = true
		}
		byProxy[id] = e
	}
	return changed
}

func normHealth(h string) string {
	switch h {
	case wire.HealthHealthy, wire.HealthUnhealthy:
		return h
	}
	return wire.HealthUnknown
}

// snapshotFor builds the snapshot of proxy id; false when c is no longer
// its stream.
func (r *Registry) snapshotFor(id string, c *conn) (*wire.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.proxies[id]
	if !ok || p.conn != c {
		return nil, false
	}
	now := r.now()
	snap := &wire.Snapshot{Version: r.policyVersion, Generation: r.generation, Services: make(map[string]wire.Service, len(p.services))}
	eps := r.endpointsLocked(p.upstreams, now)
	for s := range p.services {
		svc := wire.Service{Endpoints: []wire.Endpoint{}, Policies: r.byService[s]}
		if svc.Policies == nil {
			svc.Policies = []policy.Document{}
		}
		for _, e := range eps[s] {
			svc.Endpoints = append(svc.Endpoints, e.Endpoint)
		}
		snap.Services[s] = svc
	}
	return snap, true
}

// Ejection is one caller's ejection of an endpoint.
type Ejection struct {
	ProxyID string    `json:"proxy_id"`
	Reason  string    `json:"reason,omitempty"`
	Until   time.Time `json:"until,omitzero"`
}

// EndpointInfo is an endpoint as the API shows it.
type EndpointInfo struct {
	wire.Endpoint
	Service   string `json:"service"`
	Connected bool   `json:"connected"`
	// Disconnected is when its proxy's stream ended (zero while connected).
	Disconnected time.Time `json:"disconnected,omitzero"`
	// HealthReason says where the health comes from.
	HealthReason string            `json:"health_reason,omitempty"`
	EjectedBy    []Ejection        `json:"ejected_by,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// ConfigVersion is the policy version its proxy last applied.
	ConfigVersion uint64 `json:"config_version"`
}

// endpointsLocked returns the endpoints of services (nil = all), each list
// sorted by address.
func (r *Registry) endpointsLocked(services map[string]bool, now time.Time) map[string][]EndpointInfo {
	out := map[string][]EndpointInfo{}
	all := make([]*proxy, 0, len(r.proxies)+len(r.peers))
	for _, p := range r.proxies {
		if !r.peerWinsLocked(p) {
			all = append(all, p)
		}
	}
	for id, peer := range r.peers {
		if p, ok := r.proxies[id]; ok && !r.peerWinsLocked(p) {
			continue
		}
		// Connected to another server: shown as connected, with the
		// health that server knows.
		all = append(all, &proxy{hello: peer.Hello, conn: &conn{}, status: wire.Status{Health: peer.Health, ConfigVersion: peer.ConfigVersion}})
	}
	for _, p := range all {
		h := &p.hello
		if services != nil && !services[h.Service] {
			continue
		}
		for _, addr := range h.Inbound {
			e := EndpointInfo{
				Endpoint:      wire.Endpoint{Address: addr, Version: h.Version, ProxyID: h.ProxyID, Mode: h.Mode, Health: wire.HealthUnknown, MTLS: slices.Contains(h.MTLS, addr)},
				Service:       h.Service,
				Connected:     p.conn != nil,
				Disconnected:  p.disconnected,
				Labels:        h.Labels,
				ConfigVersion: p.status.ConfigVersion,
			}
			if e.Connected {
				e.Disconnected = time.Time{}
			}
			healthy, unhealthy := 0, 0
			for caller, st := range r.reports[epKey{h.Service, addr}] {
				switch normHealth(st.Health) {
				case wire.HealthHealthy:
					healthy++
				case wire.HealthUnhealthy:
					unhealthy++
				}
				if st.Ejected && (st.Until.IsZero() || now.Before(st.Until)) {
					e.Ejected = true
					e.EjectedBy = append(e.EjectedBy, Ejection{ProxyID: caller, Reason: st.Reason, Until: st.Until})
				}
			}
			sort.Slice(e.EjectedBy, func(i, j int) bool { return e.EjectedBy[i].ProxyID < e.EjectedBy[j].ProxyID })
			switch own := normHealth(p.status.Health); {
			case own != wire.HealthUnknown:
				e.Health, e.HealthReason = own, "own proxy's health check"
			case unhealthy > 0 && healthy == 0:
				e.Health, e.HealthReason = wire.HealthUnhealthy, fmt.Sprintf("%d callers report it unhealthy", unhealthy)
			case healthy > 0:
				e.Health, e.HealthReason = wire.HealthHealthy, fmt.Sprintf("%d callers report it healthy", healthy)
			}
			out[h.Service] = append(out[h.Service], e)
		}
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Address < list[j].Address })
	}
	return out
}

// ProxyInfo is a proxy as the API shows it.
type ProxyInfo struct {
	ProxyID       string            `json:"proxy_id"`
	Service       string            `json:"service"`
	Version       string            `json:"version"`
	Mode          policy.Mode       `json:"mode"`
	Inbound       []string          `json:"inbound"`
	Upstreams     []string          `json:"upstreams"`
	Labels        map[string]string `json:"labels,omitempty"`
	Connected     bool              `json:"connected"`
	ConnectedAt   time.Time         `json:"connected_at"`
	Disconnected  time.Time         `json:"disconnected,omitzero"`
	Health        string            `json:"health"`
	ConfigVersion uint64            `json:"config_version"`
	StatusAt      time.Time         `json:"status_at,omitzero"`
}

// View is the registry as the API shows it.
type View struct {
	// PolicyVersion is the version proxies are being sent.
	PolicyVersion uint64 `json:"policy_version"`
	// Endpoints are sorted by service, version and address.
	Endpoints []EndpointInfo `json:"endpoints"`
	// Proxies are sorted by id.
	Proxies []ProxyInfo `json:"proxies"`
}

// View returns the endpoints and proxies of service ("" = all).
func (r *Registry) View(service string) View {
	r.mu.Lock()
	defer r.mu.Unlock()
	var filter map[string]bool
	if service != "" {
		filter = map[string]bool{service: true}
	}
	v := View{PolicyVersion: r.policyVersion, Endpoints: []EndpointInfo{}, Proxies: []ProxyInfo{}}
	for _, list := range r.endpointsLocked(filter, r.now()) {
		v.Endpoints = append(v.Endpoints, list...)
	}
	sort.Slice(v.Endpoints, func(i, j int) bool {
		a, b := &v.Endpoints[i], &v.Endpoints[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Address < b.Address
	})
	for _, p := range r.proxies {
		if service != "" && p.hello.Service != service {
			continue
		}
		pi := ProxyInfo{
			ProxyID: p.hello.ProxyID, Service: p.hello.Service, Version: p.hello.Version, Mode: p.hello.Mode,
			Inbound: p.hello.Inbound, Upstreams: p.hello.Upstreams, Labels: p.hello.Labels,
			Connected: p.conn != nil, ConnectedAt: p.connectedAt, Health: normHealth(p.status.Health),
			ConfigVersion: p.status.ConfigVersion, StatusAt: p.statusAt,
		}
		if p.conn == nil {
			pi.Disconnected = p.disconnected
		}
		if pi.Inbound == nil {
			pi.Inbound = []string{}
		}
		if pi.Upstreams == nil {
			pi.Upstreams = []string{}
		}
		v.Proxies = append(v.Proxies, pi)
	}
	sort.Slice(v.Proxies, func(i, j int) bool { return v.Proxies[i].ProxyID < v.Proxies[j].ProxyID })
	return v
}
