package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/ca"
	"github.com/meshscope/meshscope/control/etcdstate"
	"github.com/meshscope/meshscope/control/jsonlog"
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
	// StateStore is where the policy log lives: "embedded" (default: in
	// Dir) or "etcd" (shared by every server of the cluster, with leader
	// election for the controllers).
	StateStore string `yaml:"state_store"`
	// Etcd is the etcd cluster of --state-store etcd.
	Etcd etcdstate.Config `yaml:"etcd"`
	// ID names this server in the leader election. Default its hostname
	// and process id.
	ID string `yaml:"-"`
}

// State stores.
const (
	StateEmbedded = "embedded"
	StateEtcd     = "etcd"
)

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
	return Config{PollInterval: DefaultPollInterval, EndpointGrace: registry.DefaultGrace, CA: ca.DefaultConfig(),
		StateStore: StateEmbedded, Etcd: etcdstate.DefaultConfig()}
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
	switch c.StateStore {
	case StateEmbedded:
	case StateEtcd:
		if err := c.Etcd.Validate(); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
	default:
		return fmt.Errorf("state_store: %q is not a state store (want %s or %s)", c.StateStore, StateEmbedded, StateEtcd)
	}
	return nil
}

// Leadership tells whether this server leads its cluster's controllers
// (guards, rollouts, rule evaluation). With the embedded store a server
// is its own cluster and always leads.
type Leadership interface {
	IsLeader() bool
}

// soleLeader is the leadership of a server without a shared store.
type soleLeader struct{}

func (soleLeader) IsLeader() bool { return true }

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
	etcd     *clientv3.Client   // nil with the embedded store
	elector  *etcdstate.Elector // nil with the embedded store
	peers    *etcdstate.Peers   // nil with the embedded store
}

// New opens the store, loads the policy directory (an invalid file is an
// error here; later it is logged and its last good content kept) and
// builds the registry.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (_ *Plane, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	p := &Plane{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if cfg.StateStore == StateEtcd {
		if p.etcd, err = etcdstate.Dial(context.Background(), cfg.Etcd, logger.With("component", "etcd")); err != nil {
			return nil, err
		}
		where := "etcd:" + cfg.Etcd.Prefix + "/policies/log"
		if p.store, err = store.OpenShared(etcdstate.OpenLog(p.etcd, cfg.Etcd.Prefix+"/policies/log"), where, reg, logger.With("component", "store")); err != nil {
			return nil, err
		}
		if p.elector, err = etcdstate.NewElector(p.etcd, cfg.Etcd, cfg.ID, reg, logger.With("component", "leader")); err != nil {
			return nil, err
		}
	} else if p.store, err = store.Open(cfg.Dir, reg, logger.With("component", "store")); err != nil {
		return nil, err
	}
	st := p.store
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_control_leader", Help: "1 while this server leads its cluster's controllers (guards, rollouts, rule evaluation), else 0.",
	}, func() float64 {
		if p.Leader().IsLeader() {
			return 1
		}
		return 0
	})); err != nil {
		return nil, fmt.Errorf("registering the leader gauge: %w", err)
	}
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
	if p.etcd != nil {
		if err := etcdstate.CheckCA(context.Background(), p.etcd, cfg.Etcd.Prefix, p.ca.Fingerprint()); err != nil {
			return nil, err
		}
		p.peers = etcdstate.NewPeers(p.etcd, cfg.Etcd, cfg.ID, logger.With("component", "shared-registry"))
		p.registry.SetPublisher(p.peers)
	}
	return p, nil
}

// Store is the policy store.
func (p *Plane) Store() *store.Store { return p.store }

// Leader tells whether this server leads the controllers: pass it to
// every part that acts (guards, rollouts, rule evaluation).
func (p *Plane) Leader() Leadership {
	if p.elector == nil {
		return soleLeader{}
	}
	return p.elector
}

// SharedState keeps a controller's state (part: "guards", "rollouts") in
// etcd, written only by the leader; nil with the embedded store (the
// controllers keep their files in the data directory).
func (p *Plane) SharedState(part string) *etcdstate.Blobs {
	if p.elector == nil {
		return nil
	}
	return etcdstate.NewBlobs(p.etcd, p.cfg.Etcd.Prefix+"/controllers/"+part, p.elector)
}

// SharedJournal is an append-only journal in etcd below
// <prefix>/journals/<part> ("audit", "guard-events") that every server of
// the cluster appends to and reads; nil with the embedded store (the
// parts keep their files in the data directory).
func (p *Plane) SharedJournal(part string, opts etcdstate.JournalOptions) (jsonlog.Journal, error) {
	if p.etcd == nil {
		return nil, nil
	}
	j, err := etcdstate.NewJournal(p.etcd, p.cfg.Etcd.Prefix+"/journals/"+part, opts)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// status answers GET /status: the store, this server and the leader.
func (p *Plane) status(ctx context.Context) StatusView {
	v := StatusView{Version: p.store.Version(), StateStore: p.cfg.StateStore, ID: p.cfg.ID, Leader: p.Leader().IsLeader()}
	if p.elector == nil {
		v.LeaderID = p.cfg.ID
		return v
	}
	id, err := p.elector.Leader(ctx)
	if err != nil {
		v.Error = err.Error()
	}
	v.LeaderID = id
	return v
}

// CA is the mesh certificate authority.
func (p *Plane) CA() *ca.CA { return p.ca }

// Registry is the proxy registry.
func (p *Plane) Registry() *registry.Registry { return p.registry }

// RegisterRoutes adds the policy API and the proxy stream to mux.
func (p *Plane) RegisterRoutes(mux *http.ServeMux) {
	a := &api{store: p.store, registry: p.registry, logger: p.logger, audit: p.audit, status: p.status}
	a.register(mux)
	mux.Handle("GET "+wire.Path, p.registry.Handler())
}

// Run runs the registry and the directory watcher until ctx ends, then
// closes every proxy stream and the store.
func (p *Plane) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 4)
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
	if p.elector != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errc <- p.elector.Run(cctx)
		}()
		go func() {
			defer wg.Done()
			errc <- p.peers.Run(cctx, p.registry.SetPeers)
		}()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	if err := p.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// Close closes the store and the etcd client; for wiring that fails
// before Run (Run closes them otherwise).
func (p *Plane) Close() error {
	var err error
	if p.store != nil {
		err = p.store.Close()
	}
	if p.etcd != nil {
		if cerr := p.etcd.Close(); err == nil {
			err = cerr
		}
		p.etcd = nil
	}
	return err
}

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
