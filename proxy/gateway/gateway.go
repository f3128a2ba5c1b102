package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/policy"
)

// Options configure a Gateway.
type Options struct {
	// Service is the gateway's service name; a Gateway document's service
	// must equal it.
	Service string
	// ConfigFile is the static Gateway document; empty = wait for one
	// from the control plane (Apply).
	ConfigFile string
	// Discovery is true with a control plane: routes may name services
	// without static addresses.
	Discovery bool
	// MaxHeaderBytes, IdleTimeout and DrainTimeout configure the servers.
	MaxHeaderBytes int
	IdleTimeout    time.Duration
	DrainTimeout   time.Duration
	// PollInterval is how often the config and certificate files are
	// checked for changes. Default 1s.
	PollInterval time.Duration
	// JWKSClient fetches jwks_url key sets. Default: a client with a 5 s
	// timeout.
	JWKSClient *http.Client
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock for tokens and rate limits. Default time.Now.
	Now func() time.Time
}

// Gateway serves the listeners and routes of one Gateway document.
type Gateway struct {
	opts    Options
	logger  *slog.Logger
	metrics *metrics
	handler http.Handler // proxy.Edge's handler, set by SetHandler

	state   atomic.Pointer[state]
	updates chan *policy.Document // from the control plane

	mu       sync.Mutex // guards keySets and limiters (compile)
	keySets  map[string]*keySet
	limiters map[string]*limiter

	lnMu      sync.Mutex
	listeners map[string]*serving // by listenerKey
	wg        sync.WaitGroup
	ready     chan struct{}
	readyOnce sync.Once
}

// serving is one bound listener and its server.
type serving struct {
	key  string
	ln   net.Listener
	srv  *http.Server
	info *listenerInfo
	// started is set once Run serves it (guarded by lnMu).
	started bool
}

// listenerInfo is what a request knows about the listener it came on.
type listenerInfo struct {
	idx      atomic.Int32 // index in the current document's listeners
	tls      bool
	redirect bool
}

type listenerCtxKey struct{}

// New loads the static document (if any), binds its listeners and
// returns the gateway; call SetHandler before Run.
func New(opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.JWKSClient == nil {
		opts.JWKSClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 15 * time.Second
	}
	g := &Gateway{opts: opts, logger: opts.Logger, updates: make(chan *policy.Document, 1),
		keySets: map[string]*keySet{}, limiters: map[string]*limiter{}, listeners: map[string]*serving{},
		ready: make(chan struct{})}
	var err error
	if g.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	if opts.ConfigFile == "" {
		return g, nil
	}
	doc, err := LoadFile(opts.ConfigFile, opts.Service)
	if err != nil {
		return nil, err
	}
	st, err := g.compile(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.ConfigFile, err)
	}
	if err := g.bind(st); err != nil {
		g.closeListeners()
		return nil, err
	}
	g.install(st)
	return g, nil
}

// LoadFile reads a Gateway document through the policy package's strict
// loader; its service must be service.
func LoadFile(path, service string) (*policy.Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	docs, err := policy.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out *policy.Document
	for i := range docs {
		d := &docs[i]
		if d.Kind != policy.KindGateway {
			return nil, fmt.Errorf("%s: document %d: kind %s: want kind: Gateway", path, i+1, d.Kind)
		}
		if out != nil {
			return nil, fmt.Errorf("%s: more than one Gateway document", path)
		}
		out = d
	}
	if out == nil {
		return nil, fmt.Errorf("%s: no Gateway document", path)
	}
	if out.Service != service {
		return nil, fmt.Errorf("%s: %s: service %q, but this gateway is --service %s", path, out.Ref(), out.Service, service)
	}
	return out, nil
}

// SetHandler sets the handler every listener serves (proxy.Edge.Handler:
// it calls back RouteEdge).
func (g *Gateway) SetHandler(h http.Handler) { g.handler = h }

// Ready is closed once the gateway serves a configuration.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Addrs returns the bound listener addresses in the document's order.
func (g *Gateway) Addrs() []string {
	st := g.state.Load()
	if st == nil {
		return nil
	}
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	out := make([]string, len(st.listenerKeys))
	for i, k := range st.listenerKeys {
		if s := g.listeners[k]; s != nil {
			out[i] = s.ln.Addr().String()
		}
	}
	return out
}

// Apply hands a Gateway document from the control plane to Run; nil
// (the document was deleted) keeps the current configuration.
func (g *Gateway) Apply(d *policy.Document) {
	if d == nil {
		return
	}
	select {
	case <-g.updates: // replace an update Run has not taken yet
	default:
	}
	g.updates <- d
}

// Run serves until ctx is cancelled, reloading on file changes, SIGHUP
// and control-plane updates, then drains the listeners.
func (g *Gateway) Run(ctx context.Context) error {
	if g.handler == nil {
		return errors.New("gateway: no handler")
	}
	if st := g.state.Load(); st != nil {
		g.serveNew()
		g.readyOnce.Do(func() { close(g.ready) })
		g.logger.Info("gateway ready", "listeners", g.Addrs(), "routes", len(st.routes))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(g.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			g.shutdown()
			return nil
		case <-hup:
			g.reloadFile("signal", true)
		case <-tick.C:
			g.reloadFile("file", false)
		case d := <-g.updates:
			g.reload("control_plane", d)
		}
	}
}

// reloadFile reloads the static document when it or a certificate file
// changed (or always, when forced by SIGHUP).
func (g *Gateway) reloadFile(source string, force bool) {
	st := g.state.Load()
	if g.opts.ConfigFile == "" {
		if st != nil && (force || st.filesChanged()) {
			g.reload(source, st.doc) // certificates only
		}
		return
	}
	if !force && st != nil && !st.filesChanged() {
		return
	}
	doc, err := LoadFile(g.opts.ConfigFile, g.opts.Service)
	if err != nil {
		g.metrics.reloads.WithLabelValues(source, "rejected").Inc()
		g.logger.Error("gateway config not reloaded; keeping the previous one", "err", err)
		if st != nil {
			st.touchFiles() // do not retry until the files change again
		}
		return
	}
	g.reload(source, doc)
}

func (g *Gateway) reload(source string, doc *policy.Document) {
	st, err := g.compile(doc)
	if err == nil {
		err = g.bind(st)
	}
	if err != nil {
		g.metrics.reloads.WithLabelValues(source, "rejected").Inc()
		g.logger.Error("gateway config not applied; keeping the previous one", "source", source, "err", err)
		if old := g.state.Load(); old != nil {
			old.touchFiles()
		}
		return
	}
	g.install(st)
	g.serveNew()
	g.closeUnused(st)
	g.metrics.reloads.WithLabelValues(source, "applied").Inc()
	g.readyOnce.Do(func() { close(g.ready) })
	g.logger.Info("gateway config applied", "source", source, "listeners", g.Addrs(), "routes", len(st.routes))
}

// install makes st the state requests see.
func (g *Gateway) install(st *state) {
	g.lnMu.Lock()
	for i, k := range st.listenerKeys {
		if s := g.listeners[k]; s != nil {
			s.info.idx.Store(int32(i))
		}
	}
	g.lnMu.Unlock()
	g.state.Store(st)
	g.metrics.observeCerts(st)
}

// listenerKey identifies a listener across reloads: a listener whose
// address, TLS-ness and mode stay is kept (with its connections).
func listenerKey(l *policy.GatewayListener) string {
	return fmt.Sprintf("%s|tls=%t|redirect=%t|h2c=%t", l.Address, l.TLS != nil, l.HTTPSRedirect, l.H2C)
}

// bind opens the listeners st has that are not open yet.
func (g *Gateway) bind(st *state) error {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	var opened []*serving
	for i, k := range st.listenerKeys {
		if g.listeners[k] != nil {
			continue
		}
		l := &st.doc.Gateway().Listeners[i]
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			for _, s := range opened {
				_ = s.ln.Close()
				delete(g.listeners, s.key)
			}
			return fmt.Errorf("listeners[%d].address %s: %w", i, l.Address, err)
		}
		info := &listenerInfo{tls: l.TLS != nil, redirect: l.HTTPSRedirect}
		info.idx.Store(int32(i))
		s := &serving{key: k, ln: ln, info: info}
		s.srv = &http.Server{
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       g.opts.IdleTimeout,
			MaxHeaderBytes:    g.opts.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
			BaseContext: func(net.Listener) context.Context {
				return context.WithValue(context.Background(), listenerCtxKey{}, info)
			},
		}
		if l.TLS != nil {
			s.srv.TLSConfig = &tls.Config{
				MinVersion:     tls.VersionTLS12,
				NextProtos:     []string{"h2", "http/1.1"},
				GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) { return g.certificate(info, hello) },
			}
		} else if l.H2C {
			s.srv.Protocols = new(http.Protocols)
			s.srv.Protocols.SetHTTP1(true)
			s.srv.Protocols.SetUnencryptedHTTP2(true)
		}
		g.listeners[k] = s
		opened = append(opened, s)
	}
	return nil
}

// serveNew starts serving listeners not served yet.
func (g *Gateway) serveNew() {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	for _, s := range g.listeners {
		if s.started {
			continue
		}
		s.started = true
		s.srv.Handler = g.handler
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			var err error
			if s.srv.TLSConfig != nil {
				err = s.srv.ServeTLS(s.ln, "", "")
			} else {
				err = s.srv.Serve(s.ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.logger.Error("gateway listener stopped", "addr", s.ln.Addr(), "err", err)
			}
		}()
	}
}

// closeUnused drains the listeners st no longer has.
func (g *Gateway) closeUnused(st *state) {
	keep := map[string]bool{}
	for _, k := range st.listenerKeys {
		keep[k] = true
	}
	g.lnMu.Lock()
	var gone []*serving
	for k, s := range g.listeners {
		if !keep[k] {
			gone = append(gone, s)
			delete(g.listeners, k)
		}
	}
	g.lnMu.Unlock()
	for _, s := range gone {
		go g.drain(s)
	}
}

func (g *Gateway) drain(s *serving) {
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.DrainTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
}

func (g *Gateway) shutdown() {
	g.lnMu.Lock()
	all := make([]*serving, 0, len(g.listeners))
	for _, s := range g.listeners {
		all = append(all, s)
	}
	g.lnMu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() { defer wg.Done(); g.drain(s) }()
	}
	wg.Wait()
	g.closeListeners()
	g.wg.Wait()
}

func (g *Gateway) closeListeners() {
	g.lnMu.Lock()
	defer g.lnMu.Unlock()
	for _, s := range g.listeners {
		_ = s.ln.Close()
	}
}

// certificate picks the listener's certificate for the client's SNI name:
// exact host, then the longest *.suffix, then the listener's first.
func (g *Gateway) certificate(info *listenerInfo, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := g.state.Load()
	idx := int(info.idx.Load())
	if st == nil || idx >= len(st.certs) || len(st.certs[idx]) == 0 {
		return nil, errors.New("no certificate configured")
	}
	certs := st.certs[idx]
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	var best *tls.Certificate
	bestLen := -1
	for _, c := range certs {
		for _, h := range c.hosts {
			switch {
			case h == name:
				return c.cert, nil
			case strings.HasPrefix(h, "*.") && strings.HasSuffix(name, h[1:]) && len(name) > len(h)-1 && len(h) > bestLen:
				best, bestLen = c.cert, len(h)
			}
		}
	}
	if best != nil {
		return best, nil
	}
	return certs[0].cert, nil
}

// state is one compiled Gateway document; never modified once installed.
type state struct {
	doc          *policy.Document
	listenerKeys []string
	certs        [][]certEntry // per listener
	httpsPort    string        // the first TLS listener's port, for redirects
	routes       []*route
	files        map[string]fileStamp // config and certificate files
	filesMu      sync.Mutex
}

type certEntry struct {
	hosts []string
	cert  *tls.Certificate
	leaf  *x509.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.ModTime(), st.Size()}
}

func (s *state) filesChanged() bool {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	for p, old := range s.files {
		if stamp(p) != old {
			return true
		}
	}
	return false
}

// touchFiles records the files' current stamps (after a failed reload, so
// it is retried only when they change again).
func (s *state) touchFiles() {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	for p := range s.files {
		s.files[p] = stamp(p)
	}
}

// compile builds a state from a validated document: certificates loaded,
// routes matched, JWKS and limiters kept from the previous state where
// their settings did not change.
func (g *Gateway) compile(doc *policy.Document) (*state, error) {
	gw := doc.Gateway()
	if gw == nil {
		return nil, fmt.Errorf("%s: not a Gateway document", doc.Ref())
	}
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	st := &state{doc: doc, files: map[string]fileStamp{}}
	if g.opts.ConfigFile != "" {
		st.files[g.opts.ConfigFile] = stamp(g.opts.ConfigFile)
	}
	for i := range gw.Listeners {
		l := &gw.Listeners[i]
		st.listenerKeys = append(st.listenerKeys, listenerKey(l))
		var certs []certEntry
		if l.TLS != nil {
			if st.httpsPort == "" {
				_, st.httpsPort, _ = net.SplitHostPort(l.Address)
			}
			for j, c := range l.TLS.Certificates {
				st.files[c.CertFile], st.files[c.KeyFile] = stamp(c.CertFile), stamp(c.KeyFile)
				cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
				if err != nil {
					return nil, fmt.Errorf("listeners[%d].tls.certificates[%d]: %w", i, j, err)
				}
				hosts := make([]string, len(c.Hosts))
				for k, h := range c.Hosts {
					hosts[k] = strings.ToLower(h)
				}
				certs = append(certs, certEntry{hosts: hosts, cert: &cert, leaf: cert.Leaf})
			}
		}
		st.certs = append(st.certs, certs)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	usedKeys, usedLimits := map[string]bool{}, map[string]bool{}
	for i := range gw.Routes {
		rs := &gw.Routes[i]
		r, err := g.compileRoute(rs, usedKeys, usedLimits)
		if err != nil {
			return nil, fmt.Errorf("%s: routes[%d]: %w", doc.Ref(), i, err)
		}
		st.routes = append(st.routes, r)
	}
	for k := range g.keySets {
		if !usedKeys[k] {
			delete(g.keySets, k)
		}
	}
	for k := range g.limiters {
		if !usedLimits[k] {
			delete(g.limiters, k)
		}
	}
	return st, nil
}

// Services returns the mesh services the current routes send to (for
// discovery).
func (g *Gateway) Services() []string {
	st := g.state.Load()
	if st == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range st.routes {
		if !seen[r.service] {
			seen[r.service] = true
			out = append(out, r.service)
		}
	}
	sort.Strings(out)
	return out
}

// StaticServices returns the services the current routes send to only at
// fixed addresses (service@host:port), never through discovery. With a
// control plane the gateway asks for them as upstreams: their registered
// endpoints tell it which of those addresses are meshed proxies, to be
// dialed with mTLS, while the routes keep their addresses.
func (g *Gateway) StaticServices() []string {
	st := g.state.Load()
	if st == nil {
		return nil
	}
	static, discovered := map[string]bool{}, map[string]bool{}
	for _, r := range st.routes {
		if len(r.addrs) > 0 {
			static[r.service] = true
		} else {
			discovered[r.service] = true
		}
	}
	var out []string
	for s := range static {
		if !discovered[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
