package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/cmd/internal/flagconfig"
	"github.com/meshscope/meshscope/cmd/internal/lifecycle"
	"github.com/meshscope/meshscope/collector"
	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/etcdstate"
	"github.com/meshscope/meshscope/control/guard"
	"github.com/meshscope/meshscope/control/rollout"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/control/tokenapi"
	"github.com/meshscope/meshscope/query"
	"github.com/meshscope/meshscope/query/red"
	"github.com/meshscope/meshscope/ruler"
	"github.com/meshscope/meshscope/topology"
	"github.com/meshscope/meshscope/ui"
)

// Trace store backends.
const (
	traceStoreEmbedded   = "embedded"
	traceStoreClickHouse = "clickhouse"
)

// serverConfig is the YAML file of `meshscope server --config`. Every field
// has a flag or sits in a part's own config section.
type serverConfig struct {
	// Data is the data directory; metrics/ and traces/ live below it unless
	// set explicitly. Default ./data.
	Data string `yaml:"data"`
	// HTTP is the address of the UI and every HTTP API. Default 127.0.0.1:7070.
	HTTP string `yaml:"http"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// DrainTimeout bounds the wait for in-flight HTTP requests on shutdown.
	// Default 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// GCPercent is the Go garbage collector's target for the server (what
	// GOGC sets): a collection starts when the heap has grown this many
	// percent above the live heap of the last one. Default 50 (Go's own
	// default is 100): the garbage of ingest (decoded requests, the
	// buffers of sealing trace segments) then adds at most half the live
	// heap to the peak memory, for some more GC CPU. 0 leaves Go's
	// setting; the GOGC environment variable, when set, wins. Flag
	// --gc-percent.
	GCPercent int `yaml:"gc_percent"`

	Collector collector.Config   `yaml:"collector"`
	Traces    traceStoreConfig   `yaml:"traces"`
	Metrics   metricstore.Config `yaml:"metrics"`
	Topology  topology.Config    `yaml:"topology"`
	Query     query.Config       `yaml:"query"`
	Control   control.Config     `yaml:"control"`
	Rules     ruler.Config       `yaml:"rules"`
	Security  securityConfig     `yaml:"security"`
}

type traceStoreConfig struct {
	// Store is "embedded" (default) or "clickhouse".
	Store      string            `yaml:"store"`
	Embedded   embedded.Config   `yaml:"embedded"`
	ClickHouse clickhouse.Config `yaml:"clickhouse"`
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		Data:         "./data",
		HTTP:         "127.0.0.1:7070",
		LogLevel:     "info",
		DrainTimeout: 10 * time.Second,
		GCPercent:    defaultGCPercent,
		Collector:    collector.Config{OTLPGRPC: "127.0.0.1:4317", OTLPHTTP: "127.0.0.1:4318", MaxInflightBytes: collector.DefaultMaxInflightBytes, SoftMemoryLimit: true},
		Traces: traceStoreConfig{
			Store:      traceStoreEmbedded,
			Embedded:   embedded.Config{Retention: embedded.DefaultRetention, MaxBytes: embedded.DefaultMaxBytes},
			ClickHouse: clickhouse.Defaults(),
		},
		Metrics: metricstore.Config{Store: metricstore.StoreEmbedded, Retention: metricstore.DefaultRetention},
		Query:   query.DefaultConfig(),
		Topology: topology.Config{
			StreamMaxClients:           topology.DefaultStreamMaxClients,
			StreamMaxClientsPerAddress: topology.DefaultStreamMaxClientsPerAddress,
		},
		Control:  control.DefaultConfig(),
		Rules:    ruler.DefaultConfig(),
		Security: securityConfig{Audit: audit.DefaultConfig()},
	}
}

// resolved fills what derives from other fields (directories below Data).
func (c serverConfig) resolved() serverConfig {
	if c.Metrics.Dir == "" {
		c.Metrics.Dir = filepath.Join(c.Data, "metrics")
		if c.Metrics.Store == metricstore.StoreRemote {
			c.Metrics.Dir = filepath.Join(c.Data, "metrics-wal") // the remote-write WAL, never a TSDB
		}
	}
	if c.Metrics.Store == metricstore.StoreRemote && c.Topology.EdgeAggregates == nil {
		// Edge aggregates and the live memory are per-server state (what
		// this server ingested); over a shared store graphs come from the
		// golden series every server sees (docs/scale-out.md).
		off := false
		c.Topology.EdgeAggregates = &off
	}
	if c.Metrics.Store == metricstore.StoreRemote && c.Metrics.Remote.Server == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(c.HTTP)
		c.Metrics.Remote.Server = host + ":" + port
	}
	if c.Control.Dir == "" {
		c.Control.Dir = filepath.Join(c.Data, "control")
	}
	if c.Control.CA.Dir == "" {
		c.Control.CA.Dir = filepath.Join(c.Data, "ca")
	}
	if c.Rules.ExternalURL == "" && c.HTTP != "" {
		c.Rules.ExternalURL = "http://" + c.HTTP
		if c.Security.TLSCert != "" {
			c.Rules.ExternalURL = "https://" + c.HTTP
		}
	}
	if c.Security.TokenStore == "" {
		c.Security.TokenStore = filepath.Join(c.Data, "auth", "tokens.yaml")
	}
	if c.Security.Audit.Dir == "" {
		c.Security.Audit.Dir = filepath.Join(c.Data, "audit")
	}
	if c.Traces.Embedded.Dir == "" {
		c.Traces.Embedded.Dir = filepath.Join(c.Data, "traces")
	}
	return c
}

// Validate names the first bad key.
func (c *serverConfig) Validate() error {
	r := c.resolved()
	switch {
	case r.Data == "":
		return errors.New("data: must be set")
	case r.HTTP == "":
		return errors.New("http: must be set")
	case r.DrainTimeout < 0:
		return errors.New("drain_timeout: must not be negative")
	case r.GCPercent != 0 && (r.GCPercent < 10 || r.GCPercent > 10000):
		return fmt.Errorf("gc_percent: %d out of range (10 to 10000, or 0 for Go's default)", r.GCPercent)
	}
	if _, err := newLogger(io.Discard, r.LogLevel); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	if err := r.Collector.Validate(); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	switch r.Traces.Store {
	case traceStoreEmbedded:
	case traceStoreClickHouse:
		if err := r.Traces.ClickHouse.Validate(); err != nil {
			return fmt.Errorf("traces.clickhouse: %w", err)
		}
	default:
		return fmt.Errorf("traces.store: %q is not a trace store (want %s or %s)", r.Traces.Store, traceStoreEmbedded, traceStoreClickHouse)
	}
	if err := r.Metrics.Validate(); err != nil {
		return err
	}
	if r.Metrics.Store == metricstore.StoreRemote && *r.Topology.EdgeAggregates {
		return errors.New("topology.edge_aggregates: must be false with --metrics-store remote (aggregates hold only what one server ingested)")
	}
	if err := r.Topology.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	if err := r.Query.Validate(); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if err := r.Control.Validate(); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if err := r.Rules.Validate(); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	if err := r.Security.validate(r.HTTP, r.Collector.OTLPGRPC, r.Collector.OTLPHTTP); err != nil {
		return err
	}
	return nil
}

func bindServerFlags(fs *flag.FlagSet, c *serverConfig) {
	fs.StringVar(&c.Data, "data", c.Data, "data `dir`ectory (metrics/ TSDB and traces/ store below it)")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "`addr`ess of the UI and all HTTP APIs")
	fs.StringVar(&c.Collector.OTLPGRPC, "otlp-grpc", c.Collector.OTLPGRPC, "OTLP gRPC receiver `addr`ess (\"off\" disables)")
	fs.StringVar(&c.Collector.OTLPHTTP, "otlp-http", c.Collector.OTLPHTTP, "OTLP HTTP receiver `addr`ess (\"off\" disables)")
	fs.Var(bytesValue{&c.Collector.MaxInflightBytes}, "ingest-max-inflight-bytes", "bound on the estimated memory of ingest requests in progress (OTLP and remote write; e.g. 512MiB)")
	fs.BoolVar(&c.Collector.SoftMemoryLimit, "ingest-soft-memory-limit", c.Collector.SoftMemoryLimit, "keep Go's soft memory limit at the live heap + --ingest-max-inflight-bytes + 128MiB (GOMEMLIMIT, when set, wins)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn, error")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go GC target `percent` for the server (0: Go's default; GOGC, when set, wins)")
	fs.StringVar(&c.Traces.Store, "trace-store", c.Traces.Store, "trace store `backend`: embedded or clickhouse")
	fs.Var(durationValue{&c.Traces.Embedded.Retention, &c.Traces.ClickHouse.Retention}, "trace-retention", "keep traces this long (e.g. 7d, 48h)")
	fs.Var(bytesValue{&c.Traces.Embedded.MaxBytes}, "trace-max-bytes", "cap the embedded trace store's size on disk (e.g. 10GiB)")
	fs.Var(durationValue{&c.Metrics.Retention}, "metrics-retention", "keep metrics this long (e.g. 15d)")
	fs.Var(bytesValue{&c.Metrics.MaxBytes}, "metrics-max-bytes", "cap the TSDB's size on disk (0 = no cap)")
	fs.StringVar(&c.Metrics.Store, "metrics-store", c.Metrics.Store, "metrics store `backend`: embedded (a TSDB in <data>/metrics) or remote (a shared Prometheus-compatible store; see --remote-write-url)")
	fs.StringVar(&c.Metrics.Remote.WriteURL, "remote-write-url", c.Metrics.Remote.WriteURL, "Prometheus remote write `url` of the shared metrics store (--metrics-store remote)")
	fs.StringVar(&c.Metrics.Remote.PrometheusURL, "prometheus-url", c.Metrics.Remote.PrometheusURL, "base `url` of the shared Prometheus-compatible engine; series are read with remote read at <url>/api/v1/read (--metrics-store remote)")
	fs.StringVar(&c.Metrics.Remote.ReadURL, "remote-read-url", c.Metrics.Remote.ReadURL, "remote read `url` of the shared metrics store, instead of --prometheus-url")
	fs.StringVar(&c.Traces.ClickHouse.DSN, "clickhouse-dsn", c.Traces.ClickHouse.DSN, "ClickHouse `dsn` (clickhouse://user:pass@host:9000/db) for --trace-store clickhouse")
	fs.StringVar(&c.Traces.ClickHouse.Cluster, "clickhouse-cluster", c.Traces.ClickHouse.Cluster, "ClickHouse `cluster` name: replicated tables ON CLUSTER")
	fs.Var(durationValue{&c.Query.Timeout}, "query-timeout", "PromQL query timeout")
	fs.IntVar(&c.Query.MaxQueryLength, "query-max-length", c.Query.MaxQueryLength, "longest PromQL expression admitted, in `bytes`")
	fs.IntVar(&c.Query.MaxQueryNodes, "query-max-nodes", c.Query.MaxQueryNodes, "most syntax `nodes` (tokens) of a PromQL expression")
	fs.IntVar(&c.Topology.StreamMaxClients, "stream-max-clients", c.Topology.StreamMaxClients, "most graph stream (WebSocket) clients; more get 503")
	fs.IntVar(&c.Topology.StreamMaxClientsPerAddress, "stream-max-clients-per-address", c.Topology.StreamMaxClientsPerAddress, "most graph stream clients from one client IP address; more get 503")
	fs.StringVar(&c.Control.Policies, "policies", c.Control.Policies, "`dir`ectory of YAML policy files to load and watch (its documents win over the API's)")
	fs.StringVar(&c.Control.CA.CertFile, "ca-cert", c.Control.CA.CertFile, "PEM `file` of the mesh CA's signing certificate (a root or an intermediate with its chain); default: a root generated in <data>/ca")
	fs.StringVar(&c.Control.CA.KeyFile, "ca-key", c.Control.CA.KeyFile, "PEM `file` of the --ca-cert key")
	fs.StringVar(&c.Control.CA.TrustDomain, "trust-domain", c.Control.CA.TrustDomain, "SPIFFE trust `domain` of proxy identities (spiffe://DOMAIN/service/NAME)")
	fs.Var(durationValue{&c.Control.CA.CertLifetime}, "cert-lifetime", "lifetime of proxy certificates (rotated at 2/3 of it)")
	fs.StringVar(&c.Control.StateStore, "state-store", c.Control.StateStore, "control state `backend`: embedded (policy log in <data>/control) or etcd (shared by several servers; needs --etcd-endpoints)")
	fs.Var(commaListValue{&c.Control.Etcd.Endpoints}, "etcd-endpoints", "comma-separated etcd client `URLs` for --state-store etcd (http://A:2379,http://B:2379)")
	fs.Var(durationValue{&c.Control.EndpointGrace}, "endpoint-grace", "how long a disconnected proxy's endpoints stay in the registry")
	fs.Var(stringsValue{&c.Rules.RuleFiles}, "rule-files", "`glob` of Prometheus rule files to evaluate (repeatable; reloaded on SIGHUP and POST /-/reload)")
	fs.Var(durationValue{&c.Rules.EvalInterval}, "rule-eval-interval", "how often rules (SLO and --rule-files) are evaluated")
	fs.Var(stringsValue{&c.Rules.Alertmanagers}, "alertmanager", "Alertmanager base `URL` to send alerts to (repeatable)")
	bindSecurityFlags(fs, &c.Security)
	fs.StringVar(&c.Rules.ExternalURL, "external-url", c.Rules.ExternalURL, "`URL` the UI is reached at, for links in alerts (default http://<--http>)")
}

// durationValue is a flag accepting Prometheus durations (1d, 2w, 90s) that
// sets one or more time.Duration fields.
type durationValue []*time.Duration

func (d durationValue) String() string {
	if len(d) == 0 || d[0] == nil {
		return ""
	}
	return model.Duration(*d[0]).String()
}

func (d durationValue) Set(s string) error {
	v, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	for _, p := range d {
		*p = time.Duration(v)
	}
	return nil
}

// stringsValue is a repeatable flag; each use appends to the list (after
// the config file's entries).
type stringsValue struct{ p *[]string }

func (s stringsValue) String() string {
	if s.p == nil {
		return ""
	}
	return strings.Join(*s.p, ",")
}

func (s stringsValue) Set(v string) error {
	*s.p = append(*s.p, v)
	return nil
}

// commaListValue is a flag taking a comma-separated list; it replaces the
// config file's list.
type commaListValue struct{ p *[]string }

func (s commaListValue) String() string {
	if s.p == nil {
		return ""
	}
	return strings.Join(*s.p, ",")
}

func (s commaListValue) Set(v string) error {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e == "" {
			return fmt.Errorf("%q: an empty entry in the list", v)
		}
		out = append(out, e)
	}
	*s.p = out
	return nil
}

// bytesValue is a flag accepting sizes such as 512MiB or 10GB.
type bytesValue struct{ p *int64 }

func (b bytesValue) String() string {
	if b.p == nil {
		return ""
	}
	return units.Base2Bytes(*b.p).String()
}

func (b bytesValue) Set(s string) error {
	v, err := units.ParseBase2Bytes(s)
	if err != nil {
		return fmt.Errorf("size %q: want a number with a unit such as 512MiB or 10GiB", s)
	}
	*b.p = int64(v)
	return nil
}

func parseServerConfig(args []string, output io.Writer) (serverConfig, error) {
	return flagconfig.Parse("meshscope server", args, defaultServerConfig, bindServerFlags, output)
}

func runServer(ctx context.Context, args []string, _, stderr io.Writer) int {
	cfg, err := parseServerConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshscope server: %v\n", err)
		return 2
	}
	logger, _ := newLogger(stderr, cfg.LogLevel)
	if err := serve(ctx, cfg.resolved(), logger); err != nil {
		logger.Error("server stopped", "err", err)
		return 1
	}
	return 0
}

// serve opens the stores, wires the parts and runs them until ctx ends.
func serve(ctx context.Context, cfg serverConfig, logger *slog.Logger) (err error) {
	start := time.Now()
	defer setGCPercent(cfg.GCPercent, logger)()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// closeOnError releases what was opened if wiring fails half way.
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	metrics, err := openMetricsStore(cfg.Metrics, reg, logger.With("part", "metrics"))
	if err != nil {
		return err
	}
	closers = append(closers, metrics.Close)

	traces, err := openTraceStore(ctx, cfg.Traces, reg, logger.With("part", "traces"))
	if err != nil {
		return err
	}
	closers = append(closers, traces.Close)

	var engine promql.QueryEngine = promql.NewEngine(cfg.Query.EngineOpts(reg, logger.With("part", "promql")))
	if r, ok := metrics.(*metricstore.Remote); ok && r.Engine() != nil {
		// --prometheus-url: PromQL is answered by the remote engine, for the
		// API, the topology, the tables, the rules, SLOs, guards, rollouts.
		engine = r.Engine()
	}

	topo, err := topology.New(cfg.Topology, engine, metrics, metrics, reg, logger.With("part", "topology"))
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	self, err := metricstore.NewSelfMetrics(metricstore.SelfMetricsConfig{}, reg, metrics, logger.With("part", "self-metrics"))
	if err != nil {
		return fmt.Errorf("self-metrics: %w", err)
	}
	coll, err := collector.New(cfg.Collector, collector.Sinks{
		Spans:    consumer.FanOut{consumer.SpansFunc(traces.WriteSpans), topo}, // the durable store first: its error is the ack
		Metrics:  topo.AppendableV2(metrics),                                   // edge aggregates are counted as samples commit
		Metadata: metrics,                                                      // remote write 1.0 metadata
	}, reg, logger.With("part", "collector"))
	if err != nil {
		return err
	}
	api, err := query.New(cfg.Query, engine, metrics, traces, topo, reg, logger.With("part", "query"), query.WithStatus(serverStatus(cfg, start)))
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}

	cfg.Control.CAAuthorizer = auth.CertAuthorizer{}
	plane, err := control.New(cfg.Control, reg, logger.With("part", "control"))
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	closers = append(closers, plane.Close)

	// In a cluster (--state-store etcd) the audit log and the guard
	// events are the cluster's, in etcd; alone, files in the data dir.
	sharedAudit, err := plane.SharedJournal("audit", etcdstate.JournalOptions{Keep: cfg.Control.Etcd.AuditKeep, MaxAge: cfg.Security.Audit.Retention})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	sec, err := openSecurity(cfg.Security, sharedAudit, reg, logger.With("part", "security"))
	if err != nil {
		return err
	}
	closers = append(closers, sec.audit.Close)
	coll.Secure(sec.ingestWrap(), sec.tls)
	plane.SetAudit(sec.audit)

	rl, err := ruler.New(cfg.Rules, engine, metrics, metrics, reg, logger.With("part", "rules"))
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	api.SetRules(rl)
	if cfg.Metrics.Store == metricstore.StoreRemote {
		// Over a shared metrics store the rules are the cluster's: only the
		// leader evaluates them (alone, a server always leads).
		rl.SetLeadership(plane.Leader())
	}
	slos, err := slo.NewManager(plane.Store(), rl, engine, metrics,
		slo.Options{EvalInterval: cfg.Rules.EvalInterval, ExternalURL: cfg.Rules.ExternalURL}, reg, logger.With("part", "slo"))
	if err != nil {
		return fmt.Errorf("slo: %w", err)
	}

	// In a cluster (--state-store etcd) only the leader acts, on state
	// kept in etcd; alone, a server acts on its files in the data dir.
	guardOpts := guard.Options{Dir: filepath.Join(cfg.Data, "guards"), EvalInterval: cfg.Rules.EvalInterval, ExternalURL: cfg.Rules.ExternalURL}
	rolloutOpts := rollout.Options{Budget: slos}
	if st := plane.SharedState("guards"); st != nil {
		guardOpts.State, guardOpts.Leader = st, plane.Leader()
		if guardOpts.Events, err = plane.SharedJournal("guard-events", etcdstate.JournalOptions{Keep: cfg.Control.Etcd.EventsKeep}); err != nil {
			return fmt.Errorf("guards: %w", err)
		}
	}
	if st := plane.SharedState("rollouts"); st != nil {
		rolloutOpts.State, rolloutOpts.Leader = st, plane.Leader()
	}
	guards, err := guard.New(guardOpts, plane.Store(), rl, plane.Registry(), engine, metrics, rl, reg, logger.With("part", "guards"))
	if err != nil {
		return fmt.Errorf("guards: %w", err)
	}
	rl.AfterEval(guards.AfterEval)
	rolloutOpts.Guard = guards
	guards.SetAudit(sec.audit)

	rollouts, err := rollout.New(rollout.Config{Dir: filepath.Join(cfg.Data, "rollouts")}, plane.Store(),
		rollout.Collector{Metrics: red.Source{Engine: engine, Queryable: metrics}, Traces: traces},
		rolloutOpts, reg, logger.With("part", "rollouts"))
	if err != nil {
		return fmt.Errorf("rollouts: %w", err)
	}
	rollouts.SetAudit(sec.audit)

	ready := lifecycle.NewReady()
	mux := http.NewServeMux()
	coll.RegisterRoutes(mux)
	topo.RegisterRoutes(mux)
	api.RegisterRoutes(mux)
	plane.RegisterRoutes(mux)
	rl.RegisterRoutes(mux)
	slos.RegisterRoutes(mux)
	rollouts.RegisterRoutes(mux)
	guards.RegisterRoutes(mux)
	ui.RegisterRoutes(mux)
	sec.auth.RegisterRoutes(mux)
	sec.audit.RegisterRoutes(mux)
	tokenapi.New(sec.auth, sec.audit, logger.With("part", "tokens")).RegisterRoutes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	readyHandler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ready.IsSet() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /ready", readyHandler)
	mux.Handle("GET /-/ready", readyHandler)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "healthy\n") })

	ln, err := lifecycle.Listen("http", cfg.HTTP)
	if err != nil {
		return err
	}
	if sec.tls != nil {
		ln = tls.NewListener(ln, sec.tls)
	}
	httpSrv := &lifecycle.HTTPServer{
		Server: &http.Server{
			Handler:           sec.auth.Middleware(mux),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		Listener:     ln,
		DrainTimeout: cfg.DrainTimeout,
		Ready:        ready,
	}

	// Sinks first; the group stops them in reverse: HTTP and receivers stop
	// accepting, the pipeline drains into the stores, the stores close last.
	var g lifecycle.Group
	g.Add("metrics store", closerRunner(metrics.Close))
	g.Add("audit log", closerRunner(sec.audit.Close))
	g.Add("trace store", closerRunner(traces.Close))
	g.Add("self-metrics", self)
	g.Add("topology", topo)
	g.Add("collector", coll)
	g.Add("control plane", plane)
	g.Add("rules", rl)
	g.Add("slo", slos)
	g.Add("rollouts", rollouts)
	g.Add("guards", guards)
	g.Add("http", httpSrv)
	closers = nil // the group owns them now

	logger.Info("meshscope server started",
		"ui", sec.scheme()+"://"+ln.Addr().String()+"/", "auth", sec.auth.Enabled(),
		"otlp_grpc", coll.GRPCAddr(), "otlp_http", coll.HTTPAddr(),
		"data", cfg.Data, "trace_store", cfg.Traces.Store, "state_store", cfg.Control.StateStore)
	return g.Run(ctx, logger)
}

// closerRunner keeps a store open until ctx ends, then closes it.
func closerRunner(closeFn func() error) lifecycle.Runner {
	return lifecycle.RunFunc(func(ctx context.Context) error {
		<-ctx.Done()
		return closeFn()
	})
}

// metricsStore is what the server's parts use of the metrics store: the
// PromQL engine's Queryable, the appenders of the receivers, the ruler and
// the topology, and the metric metadata the senders carried.
type metricsStore interface {
	storage.Queryable
	storage.Appendable
	storage.AppendableV2
	SetMetadata(family string, md metadata.Metadata)
	MetricMetadata() map[string]metadata.Metadata
	Close() error
}

func openMetricsStore(cfg metricstore.Config, reg prometheus.Registerer, logger *slog.Logger) (metricsStore, error) {
	if cfg.Store == metricstore.StoreRemote {
		s, err := metricstore.OpenRemote(cfg.Remote, cfg.Dir, reg, logger)
		if err != nil {
			return nil, fmt.Errorf("opening the shared metrics store (%s): %w", cfg.Remote.WriteURL, err)
		}
		logger.Info("metrics go to a shared store", "remote_write", cfg.Remote.WriteURL, "server_label", cfg.Remote.Server, "wal", cfg.Dir)
		return s, nil
	}
	s, err := metricstore.New(cfg, reg, logger)
	if err != nil {
		return nil, fmt.Errorf("opening metrics store in %s: %w", cfg.Dir, err)
	}
	return s, nil
}

func openTraceStore(ctx context.Context, cfg traceStoreConfig, reg prometheus.Registerer, logger *slog.Logger) (tracestore.Store, error) {
	switch cfg.Store {
	case traceStoreClickHouse:
		s, err := clickhouse.New(ctx, cfg.ClickHouse, reg, logger)
		if err != nil {
			return nil, fmt.Errorf("opening ClickHouse trace store: %w", err)
		}
		return s, nil
	default:
		s, err := embedded.New(cfg.Embedded, reg, logger)
		if err != nil {
			return nil, fmt.Errorf("opening embedded trace store in %s: %w", cfg.Embedded.Dir, err)
		}
		return s, nil
	}
}

// defaultGCPercent is the default of serverConfig.GCPercent.
const defaultGCPercent = 50

// setGCPercent applies the server's GC target unless it is 0 or GOGC is
// set, and returns what restores the previous one.
func setGCPercent(pct int, logger *slog.Logger) func() {
	if pct == 0 {
		return func() {}
	}
	if v := os.Getenv("GOGC"); v != "" {
		logger.Info("GC target left to GOGC", "GOGC", v)
		return func() {}
	}
	prev := debug.SetGCPercent(pct)
	return func() { debug.SetGCPercent(prev) }
}
