package proxy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Mode says what the proxy may do to traffic.
const (
	// ModeObserve changes nothing about a request except adding trace headers.
	ModeObserve = "observe"
	// ModeEnforce is reserved for traffic policies.
	ModeEnforce = "enforce"
)

// Listener protocol overrides.
const (
	// ProtocolAuto detects the protocol by peeking the first bytes.
	ProtocolAuto = "auto"
	// ProtocolOpaque forwards bytes without looking at them (use for
	// server-speaks-first protocols such as MySQL or SMTP).
	ProtocolOpaque = "opaque"
	// ProtocolHTTP skips detection and serves HTTP/1.1 and h2c.
	ProtocolHTTP = "http"
)

// Duration is a time.Duration written as a Go duration string ("1.5s") in
// YAML, JSON and flags.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (like 1.5s or 200ms): %q", b)
	}
	*d = Duration(v)
	return nil
}

// Inbound is a listener for traffic from the mesh to the local app.
type Inbound struct {
	// Listen is the address to accept on (host:port). Required.
	Listen string `yaml:"listen" json:"listen"`
	// App is the local application's address (host:port). Required.
	App string `yaml:"app" json:"app"`
	// Protocol is auto (default), http or opaque.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
}

// Upstream is a listener for traffic from the local app to one service.
type Upstream struct {
	// Listen is the address the app connects to (host:port). Required.
	Listen string `yaml:"listen" json:"listen"`
	// Service is the destination service's name. Required.
	Service string `yaml:"service" json:"service"`
	// Addrs are the destination's endpoints (host:port), used round-robin.
	// At least one, unless control_plane is set (then they are the fallback
	// while discovery reports no endpoint).
	Addrs []string `yaml:"addrs" json:"addrs"`
	// Protocol is auto (default), http or opaque.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
}

// TLS configures TLS termination on the proxy's listeners.
type TLS struct {
	// CertFile is a PEM certificate chain; empty = TLS traffic is forwarded as opaque TCP.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is the PEM private key for CertFile.
	KeyFile string `yaml:"key_file" json:"key_file"`
}

// Telemetry configures spans and metric export.
type Telemetry struct {
	// Collector is the collector's OTLP gRPC address: host:port (HTTP/2
	// without TLS) or https://host:port (TLS, trusting server_ca); empty =
	// no export. Default empty.
	Collector string `yaml:"collector" json:"collector"`
	// PushInterval is how often metrics are pushed to the collector. Default 1s.
	PushInterval Duration `yaml:"push_interval" json:"push_interval"`
	// ExportTimeout bounds one export call (spans or metrics). Default 2s.
	ExportTimeout Duration `yaml:"export_timeout" json:"export_timeout"`
	// SampleRatio is the fraction (0..1) of new traces recorded; a sampled or
	// unsampled parent decides for its children. Default 1 (all).
	SampleRatio float64 `yaml:"sample_ratio" json:"sample_ratio"`
	// SpanQueueSize is the number of finished spans buffered for export; spans
	// beyond it are dropped and counted. Default 2048 spans.
	SpanQueueSize int `yaml:"span_queue_size" json:"span_queue_size"`
	// SpanBatchSize is the maximum spans per export call. Default 256 spans.
	SpanBatchSize int `yaml:"span_batch_size" json:"span_batch_size"`
	// SpanFlushInterval is the longest a finished span waits before export. Default 1s.
	SpanFlushInterval Duration `yaml:"span_flush_interval" json:"span_flush_interval"`
	// NoTraceHeaders stops the proxy from adding or changing trace headers
	// (spans are still recorded; callers then show as unknown). Default false.
	NoTraceHeaders bool `yaml:"no_trace_headers" json:"no_trace_headers"`
	// DisableTracing records no spans at all (metrics only). Default false.
	DisableTracing bool `yaml:"disable_tracing" json:"disable_tracing"`
	// DisableMetrics records no golden metrics (self-metrics remain). Default false.
	DisableMetrics bool `yaml:"disable_metrics" json:"disable_metrics"`
}

// Config is the whole proxy configuration. Every field has a flag of the
// same meaning; flags override the file.
type Config struct {
	// Service is this proxy's service name. Required.
	Service string `yaml:"service" json:"service"`
	// Version is this service's version. Default v1.
	Version string `yaml:"version" json:"version"`
	// Mode is observe (default) or enforce.
	Mode string `yaml:"mode" json:"mode"`
	// Admin is the admin listener (/metrics, /ready, /live, /config). Default 127.0.0.1:4191.
	Admin string `yaml:"admin" json:"admin"`
	// Inbound listeners (mesh → local app).
	Inbound []Inbound `yaml:"inbound" json:"inbound"`
	// Upstreams are outbound listeners (local app → a service).
	Upstreams []Upstream `yaml:"upstreams" json:"upstreams"`
	// HTTPProxy is an HTTP forward-proxy listener (for apps using HTTP_PROXY); empty = off.
	HTTPProxy string `yaml:"http_proxy" json:"http_proxy"`
	// Routes maps a Host (without port) to a service name for the forward
	// proxy; unknown hosts are reported as the destination "external".
	Routes map[string]string `yaml:"routes" json:"routes"`
	// RouteTemplates are declared path templates ("/api/items/{id}",
	// "/static/{path...}") used as the route label; other paths are "unmatched".
	RouteTemplates []string `yaml:"route_templates" json:"route_templates"`
	// DetectTimeout is how long the proxy waits for a client's first bytes;
	// a connection that sends nothing by then is closed (declare
	// server-speaks-first ports opaque). Default 1s.
	DetectTimeout Duration `yaml:"detect_timeout" json:"detect_timeout"`
	// MaxDetections bounds the connections waiting for protocol detection
	// at once, per proxy; further connections are closed at once. Default 1024.
	MaxDetections int `yaml:"max_detections" json:"max_detections"`
	// MaxHeaderBytes bounds an HTTP request head (request line and header
	// lines; also a trailer section, and HTTP/2 header lists); larger
	// requests get 431. Default 65536 bytes.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`
	// ConnectTimeout bounds connecting to an upstream or the app. Default 5s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// ResponseTimeout bounds waiting for response headers (then 504); 0 = none. Default 30s.
	ResponseTimeout Duration `yaml:"response_timeout" json:"response_timeout"`
	// IdleTimeout closes idle client and upstream keep-alive connections. Default 90s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// DrainTimeout bounds the drain of in-flight requests on shutdown. Default 15s.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// TLS terminates TLS (ALPN h2, http/1.1) on every listener when set.
	TLS TLS `yaml:"tls" json:"tls"`
	// Telemetry configures spans and metric export.
	Telemetry Telemetry `yaml:"telemetry" json:"telemetry"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level" json:"log_level"`
	// ControlPlane is the control plane's URL (http://host:port), or the
	// URLs of several servers of one control plane separated by commas:
	// register, discover endpoints and receive traffic policies. Empty =
	// static config.
	ControlPlane string `yaml:"control_plane" json:"control_plane"`
	// StateDir keeps the last good control-plane snapshot so a restart
	// without the control plane still routes. Default: a directory per
	// service and listener under the system temp dir.
	StateDir string `yaml:"state_dir" json:"state_dir"`
	// TokenFile holds the bearer token sent to a server run with
	// --auth-file, on the control stream and the OTLP exports (role proxy,
	// operator or admin). Default none.
	TokenFile string `yaml:"token_file" json:"token_file"`
	// ServerCA is a PEM file of the CA that signed the Meshscope server's
	// --tls-cert: trusted for an https:// control plane and collector.
	// Default: the system roots.
	ServerCA string `yaml:"server_ca" json:"server_ca"`
	// NoMTLS turns mesh mTLS off (--mtls=false): with a control plane the
	// proxy otherwise gets a certificate and talks mTLS to meshed peers
	// (docs/mtls.md).
	NoMTLS bool `yaml:"no_mtls" json:"no_mtls"`
	// MaxProcs is how many CPU cores (threads running Go code, GOMAXPROCS)
	// the proxy uses at once; 0 = Go's default (every core, or the
	// container's CPU limit). The GOMAXPROCS environment variable overrides
	// it. Applied by the meshscope-proxy binary. Default 1 core.
	MaxProcs int `yaml:"max_procs" json:"max_procs"`
}

// SlogLevel returns LogLevel as a slog.Level.
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Version:         "v1",
		Mode:            ModeObserve,
		LogLevel:        "info",
		Admin:           "127.0.0.1:4191",
		DetectTimeout:   Duration(time.Second),
		MaxDetections:   1024,
		MaxHeaderBytes:  64 << 10,
		ConnectTimeout:  Duration(5 * time.Second),
		ResponseTimeout: Duration(30 * time.Second),
		IdleTimeout:     Duration(90 * time.Second),
		DrainTimeout:    Duration(15 * time.Second),
		MaxProcs:        1,
		Telemetry: Telemetry{
			PushInterval:      Duration(time.Second),
			ExportTimeout:     Duration(2 * time.Second),
			SampleRatio:       1,
			SpanQueueSize:     2048,
			SpanBatchSize:     256,
			SpanFlushInterval: Duration(time.Second),
		},
	}
}

// validName reports whether s can be a service name or version: it must fit
// in a W3C tracestate value and a Prometheus label without escaping surprises.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func validAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("not host:port: %q", s)
	}
	_ = host
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port in %q", s)
	}
	return nil
}

func validProtocol(p string) bool {
	return p == "" || p == ProtocolAuto || p == ProtocolOpaque || p == ProtocolHTTP
}

// flagOfKey names the flag that sets a config key, for error messages.
var flagOfKey = map[string]string{
	"service": "--service", "version": "--version", "mode": "--mode", "admin": "--admin",
	"inbound": "--inbound", "upstreams": "--upstream", "http_proxy": "--http-proxy",
	"routes": "--route", "route_templates": "--route-template",
	"detect_timeout": "--detect-timeout", "max_detections": "--max-detections", "max_header_bytes": "--max-header-bytes", "connect_timeout": "--connect-timeout",
	"response_timeout": "--response-timeout", "idle_timeout": "--idle-timeout",
	"drain_timeout": "--drain-timeout", "tls": "--tls-cert/--tls-key", "log_level": "--log-level", "max_procs": "--max-procs",
	"telemetry.collector": "--collector", "telemetry.push_interval": "--push-interval",
	"telemetry.sample_ratio": "--sample-ratio", "control_plane": "--control-plane", "state_dir": "--state-dir", "telemetry.span_queue_size": "--span-queue",
	"server_ca": "--server-ca",
}

// Validate checks the configuration and names every bad key (and the flag
// that sets it).
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		name := key
		top, _, _ := strings.Cut(key, "[")
		top, _, _ = strings.Cut(top, ".addrs")
		if f, ok := flagOfKey[top]; ok {
			name = key + " (" + f + ")"
		}
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if !validName(c.Service) {
		bad("service", "required; 1-63 characters of [A-Za-z0-9._-], got %q", c.Service)
	}
	if !validName(c.Version) {
		bad("version", "1-63 characters of [A-Za-z0-9._-], got %q", c.Version)
	}
	if c.Mode != ModeObserve && c.Mode != ModeEnforce {
		bad("mode", "must be observe or enforce, got %q", c.Mode)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.Admin != "" {
		if err := validAddr(c.Admin); err != nil {
			bad("admin", "%v", err)
		}
	}
	seen := map[string]string{}
	listen := func(key, addr string) {
		if err := validAddr(addr); err != nil {
			bad(key, "%v", err)
			return
		}
		if other, ok := seen[addr]; ok && !strings.HasSuffix(addr, ":0") {
			bad(key, "address %s is also used by %s", addr, other)
		}
		seen[addr] = key
	}
	for i, in := range c.Inbound {
		k := fmt.Sprintf("inbound[%d]", i)
		listen(k+".listen", in.Listen)
		if err := validAddr(in.App); err != nil {
			bad(k+".app", "%v", err)
		}
		if !validProtocol(in.Protocol) {
			bad(k+".protocol", "must be auto, http or opaque, got %q", in.Protocol)
		}
	}
	for i, up := range c.Upstreams {
		k := fmt.Sprintf("upstreams[%d]", i)
		listen(k+".listen", up.Listen)
		if !validName(up.Service) {
			bad(k+".service", "1-63 characters of [A-Za-z0-9._-], got %q", up.Service)
		}
		if len(up.Addrs) == 0 && c.ControlPlane == "" {
			bad(k+".addrs", "at least one address required (or set --control-plane to discover them)")
		}
		for j, a := range up.Addrs {
			if err := validAddr(a); err != nil {
				bad(fmt.Sprintf("%s.addrs[%d]", k, j), "%v", err)
			}
		}
		if !validProtocol(up.Protocol) {
			bad(k+".protocol", "must be auto, http or opaque, got %q", up.Protocol)
		}
	}
	if c.HTTPProxy != "" {
		listen("http_proxy", c.HTTPProxy)
	}
	for host, svc := range c.Routes {
		if host == "" || strings.ContainsAny(host, "/ ") {
			bad("routes", "bad host %q", host)
		}
		if !validName(svc) {
			bad("routes["+host+"]", "bad service name %q", svc)
		}
	}
	for i, t := range c.RouteTemplates {
		if _, err := parseRouteTemplate(t); err != nil {
			bad(fmt.Sprintf("route_templates[%d]", i), "%v", err)
		}
	}
	durs := []struct {
		key string
		d   Duration
		min time.Duration
	}{
		{"detect_timeout", c.DetectTimeout, time.Millisecond},
		{"connect_timeout", c.ConnectTimeout, time.Millisecond},
		{"response_timeout", c.ResponseTimeout, 0},
		{"idle_timeout", c.IdleTimeout, time.Millisecond},
		{"drain_timeout", c.DrainTimeout, 0},
		{"telemetry.push_interval", c.Telemetry.PushInterval, 10 * time.Millisecond},
		{"telemetry.export_timeout", c.Telemetry.ExportTimeout, time.Millisecond},
		{"telemetry.span_flush_interval", c.Telemetry.SpanFlushInterval, time.Millisecond},
	}
	for _, d := range durs {
		if time.Duration(d.d) < d.min {
			bad(d.key, "must be at least %s, got %s", d.min, time.Duration(d.d))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	if c.Telemetry.Collector != "" {
		if err := validAddr(strings.TrimPrefix(c.Telemetry.Collector, "https://")); err != nil {
			bad("telemetry.collector", "%v", err)
		}
	}
	if !(c.Telemetry.SampleRatio >= 0 && c.Telemetry.SampleRatio <= 1) {
		bad("telemetry.sample_ratio", "must be within 0..1, got %v", c.Telemetry.SampleRatio)
	}
	if c.ControlPlane != "" {
		for _, raw := range strings.Split(c.ControlPlane, ",") {
			if u, err := url.Parse(strings.TrimSpace(raw)); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("control_plane", "want http://host:port (several separated by commas), got %q", raw)
			}
		}
	}
	if c.MaxDetections < 1 || c.MaxDetections > 1<<20 {
		bad("max_detections", "must be within 1..1048576, got %d", c.MaxDetections)
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 16<<20 {
		bad("max_header_bytes", "must be within 1024..16777216 bytes, got %d", c.MaxHeaderBytes)
	}
	if c.MaxProcs < 0 || c.MaxProcs > 1024 {
		bad("max_procs", "must be within 0..1024 (0 = every core), got %d", c.MaxProcs)
	}
	if c.Telemetry.SpanQueueSize < 1 || c.Telemetry.SpanQueueSize > 1<<20 {
		bad("telemetry.span_queue_size", "must be within 1..1048576, got %d", c.Telemetry.SpanQueueSize)
	}
	if c.Telemetry.SpanBatchSize < 1 || c.Telemetry.SpanBatchSize > c.Telemetry.SpanQueueSize {
		bad("telemetry.span_batch_size", "must be within 1..span_queue_size, got %d", c.Telemetry.SpanBatchSize)
	}
	if len(c.Inbound) == 0 && len(c.Upstreams) == 0 && c.HTTPProxy == "" {
		bad("inbound", "no listeners: give at least one of --inbound, --upstream, --http-proxy")
	}
	return errors.Join(errs...)
}

// DecodeConfig reads a YAML configuration over the defaults. Unknown keys
// are rejected with their name and line.
func DecodeConfig(r io.Reader) (Config, error) {
	cfg := DefaultConfig()
	if err := decodeInto(r, &cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func decodeInto(r io.Reader, cfg *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("config: more than one YAML document")
	}
	return nil
}

// ParseInbound parses a --inbound value LISTEN=APP_ADDR.
func ParseInbound(s string) (Inbound, error) {
	listen, app, ok := strings.Cut(s, "=")
	if !ok || listen == "" || app == "" {
		return Inbound{}, fmt.Errorf("want LISTEN=APP_ADDR, got %q", s)
	}
	return Inbound{Listen: listen, App: app}, nil
}

// ParseUpstream parses a --upstream value LISTEN=SERVICE@ADDR[,ADDR...]
// or LISTEN=SERVICE (addresses discovered from the control plane).
func ParseUpstream(s string) (Upstream, error) {
	listen, rest, ok := strings.Cut(s, "=")
	svc, addrs, ok2 := strings.Cut(rest, "@")
	if !ok || listen == "" || svc == "" || (ok2 && addrs == "") {
		return Upstream{}, fmt.Errorf("want LISTEN=SERVICE@ADDR[,ADDR...] (or LISTEN=SERVICE with --control-plane), got %q", s)
	}
	up := Upstream{Listen: listen, Service: svc}
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			up.Addrs = append(up.Addrs, a)
		}
	}
	return up, nil
}

// BindFlags defines the proxy's flags on fs, each bound to a field of cfg
// with that field's current value as default; cmd/internal/flagconfig
// applies them over the defaults and the --config file. A repeatable flag
// given on the command line replaces the file's list. The addresses given
// with --opaque are collected into opaque (reset here); apply them with
// MarkOpaque once the listeners are known.
func BindFlags(fs *flag.FlagSet, cfg *Config, opaque *[]string) {
	*opaque = nil
	tel := &cfg.Telemetry
	fs.StringVar(&cfg.Service, "service", cfg.Service, "this proxy's service `name` (required)")
	fs.StringVar(&cfg.Version, "version", cfg.Version, "this service's `version`")
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "observe|enforce")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "admin listen `addr` (/metrics /ready /live /config)")
	fs.StringVar(&tel.Collector, "collector", tel.Collector, "collector OTLP gRPC `host:port`, or https://host:port for TLS (empty = no export)")
	fs.StringVar(&cfg.HTTPProxy, "http-proxy", cfg.HTTPProxy, "HTTP forward-proxy listen `addr` (empty = off)")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", cfg.TLS.CertFile, "PEM certificate `file` for TLS termination (ALPN h2, http/1.1)")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", cfg.TLS.KeyFile, "PEM key `file` for --tls-cert")
	fs.Float64Var(&tel.SampleRatio, "sample-ratio", tel.SampleRatio, "fraction of new traces recorded (0..1)")
	fs.Func("span-queue", fmt.Sprintf("spans buffered for export before dropping (default %d)", tel.SpanQueueSize), func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not a whole number")
		}
		tel.SpanQueueSize = n
		tel.SpanBatchSize = min(tel.SpanBatchSize, n)
		return nil
	})
	fs.BoolVar(&tel.NoTraceHeaders, "no-trace-headers", tel.NoTraceHeaders, "never add or change trace headers")
	fs.BoolVar(&tel.DisableTracing, "no-tracing", tel.DisableTracing, "record no spans (metrics only)")
	fs.BoolVar(&tel.DisableMetrics, "no-metrics", tel.DisableMetrics, "record no golden metrics")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug|info|warn|error")
	fs.IntVar(&cfg.MaxDetections, "max-detections", cfg.MaxDetections, "connections in protocol detection at once; more are closed")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", cfg.MaxHeaderBytes, "largest request head in bytes (then 431)")
	fs.IntVar(&cfg.MaxProcs, "max-procs", cfg.MaxProcs, "CPU cores used at once (GOMAXPROCS; 0 = all; the GOMAXPROCS variable overrides)")
	fs.StringVar(&cfg.ControlPlane, "control-plane", cfg.ControlPlane, "control plane `URL` (http://host:port), or several servers of one control plane separated by commas (tried in turn): discovery and traffic policies")
	fs.StringVar(&cfg.ServerCA, "server-ca", cfg.ServerCA, "PEM `file` of the CA of the server's --tls-cert, trusted for an https:// --control-plane and --collector (default: system roots)")
	fs.StringVar(&cfg.TokenFile, "token-file", cfg.TokenFile, "`file` holding the bearer token for a server run with --auth-file (control stream and OTLP export)")
	fs.BoolFunc("mtls", "mTLS between meshed proxies with --control-plane (default true; --mtls=false disables)", func(v string) error {
		on, err := strconv.ParseBool(v)
		cfg.NoMTLS = !on
		return err
	})
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "`dir` keeping the last control-plane snapshot (default: under the temp dir)")
	listFlag(fs, "inbound", "inbound listener `LISTEN=APP_ADDR` (repeatable)", &cfg.Inbound, ParseInbound)
	listFlag(fs, "upstream", "outbound listener `LISTEN=SERVICE[@ADDR,...]` (repeatable; addresses optional with --control-plane)", &cfg.Upstreams, ParseUpstream)
	listFlag(fs, "route-template", "route `template` such as /api/items/{id} (repeatable)", &cfg.RouteTemplates, func(v string) (string, error) { return v, nil })
	listFlag(fs, "opaque", "listen `addr` whose traffic is opaque TCP, no detection (repeatable)", opaque, func(v string) (string, error) { return v, nil })
	routesSet := false
	fs.Func("route", "forward-proxy route `HOST=SERVICE` (repeatable)", func(v string) error {
		h, svc, ok := strings.Cut(v, "=")
		if !ok || h == "" || svc == "" {
			return fmt.Errorf("want HOST=SERVICE, got %q", v)
		}
		if !routesSet {
			cfg.Routes, routesSet = map[string]string{}, true
		}
		cfg.Routes[h] = svc
		return nil
	})
	fs.TextVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "bound on draining in-flight requests at shutdown")
	fs.TextVar(&cfg.DetectTimeout, "detect-timeout", cfg.DetectTimeout, "wait for a client's first bytes; a connection silent that long is closed (use --opaque for server-speaks-first ports)")
	fs.TextVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "bound on connecting upstream (then 502)")
	fs.TextVar(&cfg.ResponseTimeout, "response-timeout", cfg.ResponseTimeout, "bound on waiting for response headers (then 504); 0 = none")
	fs.TextVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "idle keep-alive connection timeout")
	fs.TextVar(&tel.PushInterval, "push-interval", tel.PushInterval, "metric push interval to the collector")
}

// listFlag defines a repeatable flag whose values, parsed, replace *dst
// (the first value given drops what *dst held).
func listFlag[T any](fs *flag.FlagSet, name, usage string, dst *[]T, parse func(string) (T, error)) {
	set := false
	fs.Func(name, usage, func(v string) error {
		x, err := parse(v)
		if err != nil {
			return err
		}
		if !set {
			*dst, set = nil, true
		}
		*dst = append(*dst, x)
		return nil
	})
}

// MarkOpaque declares the listeners on addrs (from flags or the file)
// opaque TCP; an address no listener uses is an error.
func (c *Config) MarkOpaque(addrs []string) error {
	for _, addr := range addrs {
		found := false
		for k := range c.Inbound {
			if c.Inbound[k].Listen == addr {
				c.Inbound[k].Protocol, found = ProtocolOpaque, true
			}
		}
		for k := range c.Upstreams {
			if c.Upstreams[k].Listen == addr {
				c.Upstreams[k].Protocol, found = ProtocolOpaque, true
			}
		}
		if !found {
			return fmt.Errorf("--opaque %s: no --inbound or --upstream listens on that address", addr)
		}
	}
	return nil
}
