package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/ca"
	"github.com/meshscope/meshscope/control/registry"
	"github.com/meshscope/meshscope/control/store"
	"github.com/meshscope/meshscope/control/wire"
)

// Config is the control plane's section of the server config.
type Config struct {
	// Dir holds the policy log. Default <data>/control.
	Dir string `yaml:"dir"`
	// Policies is a directory of YAML policy files to load and watch;
	// its documents win over the API's. Default none.
	Policies string `yaml:"policies"`
	// PollInterval is how often the policy directory is checked for
	// changes. Default 2s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// EndpointGrace is how long a disconnected proxy's endpoints stay in
	// the registry. Default 30s.
	EndpointGrace time.Duration `yaml:"endpoint_grace"`
	// CA is the mesh certificate authority (mTLS identities).
	CA ca.Config `yaml:"ca"`
	// CAAuthorizer decides who may get a certificate; nil = everyone.
	CAAuthorizer CAAuthorizer `yaml:"-"`
}

// caConfig is the CA config with its directory defaulted to <Dir>/ca
// (the server sets <data>/ca).
func (c Config) caConfig() ca.Config {
	if c.CA.Dir == "" && c.Dir != "" {
		c.CA.Dir = filepath.Join(c.Dir, "ca")
	}
	return c.CA
}

// Defaults.
const (
	DefaultPollInterval = 2 * time.Second
)

// DefaultConfig returns the defaults (Dir is derived from the data dir).
func DefaultConfig() Config {
	return Config{PollInterval: DefaultPollInterval, EndpointGrace: registry.DefaultGrace, CA: ca.DefaultConfig()}
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("dir: must be set")
	case c.PollInterval <= 0:
		return errors.New("poll_interval: must be positive")
	case c.EndpointGrace < 0:
		return errors.New("endpoint_grace: must not be negative")
	}
	if err := c.caConfig().Validate(); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// Plane is the control plane. Run it as a lifecycle runner; it closes the
// store when it stops.
type Plane struct {
	cfg      Config
	logger   *slog.Logger
	store    *store.Store
	registry *registry.Registry
	watcher  *watcher // nil without --policies
	audit    audit.Recorder
	ca       *ca.CA
}

// New opens the store, loads the policy directory (an invalid file is an
// error here; later it is logged and its last good content kept) and
// builds the registry.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (_ *Plane, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.Dir, reg, logger.With("component", "store"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = st.Close()
		}
	}()
	p := &Plane{cfg: cfg, logger: logger, store: st}
	if cfg.Policies != "" {
		p.watcher, err = newWatcher(cfg.Policies, st, reg, logger.With("component", "policy-dir"))
		if err != nil {
			return nil, err
		}
		if err := p.watcher.scan(true); err != nil {
			return nil, fmt.Errorf("--policies %s: %w", cfg.Policies, err)
		}
	}
	p.registry, err = registry.New(registry.Config{Grace: cfg.EndpointGrace}, st, st.Subscribe(), reg, logger.With("component", "registry"))
	if err != nil {
		return nil, err
	}
	if p.ca, err = ca.New(cfg.caConfig(), reg); err != nil {
		return nil, err
	}
	auth := cfg.CAAuthorizer
	if auth == nil {
		auth = AllowAllCerts{}
	}
	p.registry.SetSigner(certSigner{ca: p.ca, auth: auth, now: time.Now})
	return p, nil
}

// Store is the policy store.
func (p *Plane) Store() *store.Store { return p.store }

// CA is the mesh certificate authority.
func (p *Plane) CA() *ca.CA { return p.ca }

// Registry is the proxy registry.
func (p *Plane) Registry() *registry.Registry { return p.registry }

// RegisterRoutes adds the policy API and the proxy stream to mux.
func (p *Plane) RegisterRoutes(mux *http.ServeMux) {
	a := &api{store: p.store, registry: p.registry, logger: p.logger, audit: p.audit}
	a.register(mux)
	mux.Handle("GET "+wire.Path, p.registry.Handler())
}

// Run runs the registry and the directory watcher until ctx ends, then
// closes every proxy stream and the store.
func (p *Plane) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- p.registry.Run(cctx)
	}()
	if p.watcher != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- p.watcher.run(cctx, p.cfg.PollInterval)
		}()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	if err := p.store.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// Close closes the store; for wiring that fails before Run (Run closes it
// otherwise).
func (p *Plane) Close() error { return p.store.Close() }

// CAAuthorizer decides whether the credentials of a proxy stream (its HTTP
// upgrade request) may get a certificate for service. The server's auth
// wires its token check in here; without auth every proxy may.
type CAAuthorizer interface {
	AuthorizeCert(r *http.Request, service string) error
}

// AllowAllCerts is the CAAuthorizer used when no auth is configured.
type AllowAllCerts struct{}

// AuthorizeCert allows every request.
func (AllowAllCerts) AuthorizeCert(*http.Request, string) error { return nil }

// certSigner joins the CA and the authorizer for the registry.
type certSigner struct {
	ca   *ca.CA
	auth CAAuthorizer
	now  func() time.Time
}

func (s certSigner) SignProxyCert(_ context.Context, r *http.Request, service string, csrPEM []byte) (*wire.Cert, error) {
	if err := s.auth.AuthorizeCert(r, service); err != nil {
		s.ca.Denied()
		return nil, fmt.Errorf("not allowed a certificate for service %q: %w", service, err)
	}
	iss, err := s.ca.Sign(csrPEM, service, s.now())
	if err != nil {
		return nil, err
	}
	return &wire.Cert{Chain: string(iss.Chain), Bundle: string(iss.Bundle), SPIFFEID: iss.SPIFFEID, TrustDomain: s.ca.TrustDomain()}, nil
}
