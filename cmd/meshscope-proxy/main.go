// Command meshscope-proxy is the Meshscope sidecar: it forwards a service's
// inbound and outbound traffic, records spans and golden metrics, and ships
// them to the collector. See docs/proxy.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/cmd/internal/flagconfig"
	"github.com/meshscope/meshscope/cmd/internal/lifecycle"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/proxy"
	"github.com/meshscope/meshscope/proxy/controlclient"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// defaultGCPercent trades a little CPU for a smaller heap: a sidecar runs
// next to every instance, so its resident memory counts many times over.
// The GOGC environment variable overrides it.
const defaultGCPercent = 70

// Environment variables that name the proxy when --service and --version
// (and the config file) do not: `meshscope inject` sets them from the
// pod's labels through the Kubernetes downward API. Empty counts as unset.
const (
	serviceEnv = "MESHSCOPE_SERVICE"
	versionEnv = "MESHSCOPE_VERSION"
)

// parseConfig builds the effective configuration: defaults, then
// MESHSCOPE_SERVICE and MESHSCOPE_VERSION from getenv, then the --config
// file, then the flags given, then --opaque, then Validate. It also
// returns the --pprof address (empty = off; see pprof.go), a process
// setting of the binary rather than of the proxy.
func parseConfig(args []string, stderr io.Writer, getenv func(string) string) (proxy.Config, string, error) {
	defaults := func() proxy.Config {
		c := proxy.DefaultConfig()
		if v := getenv(serviceEnv); v != "" {
			c.Service = v
		}
		if v := getenv(versionEnv); v != "" {
			c.Version = v
		}
		return c
	}
	var opaque []string
	var pprofAddr string
	cfg, err := flagconfig.Parse("meshscope-proxy", args, defaults, func(fs *flag.FlagSet, c *proxy.Config) {
		proxy.BindFlags(fs, c, &opaque)
		fs.StringVar(&pprofAddr, pprofFlag, "", "serve Go runtime profiles (/debug/pprof/) on this loopback `addr` (empty = off; for performance work)")
	}, stderr)
	if err != nil {
		return cfg, "", err
	}
	if err := cfg.MarkOpaque(opaque); err != nil {
		return cfg, "", err
	}
	if err := checkPprofAddr(pprofAddr); err != nil {
		return cfg, "", err
	}
	return cfg, pprofAddr, nil
}

func run(args []string) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if isGateway(args) {
		return runGateway(args) // ingress gateway (gateway.go)
	}
	cfg, pprofAddr, err := parseConfig(args, os.Stderr, os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
		return 2
	}
	logger := setupProcess(cfg, "service", cfg.Service)
	reg := prometheus.NewRegistry()
	p, err := proxy.New(cfg, reg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
		return 1
	}
	var control *controlclient.Client
	if cfg.ControlPlane != "" {
		// Built before serving: it applies the persisted snapshot, so a
		// restart without the control plane routes by the last config.
		cc, err := controlConfig(cfg, p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
			return 1
		}
		if control, err = controlclient.New(cc, p.Policies(), reg, logger); err != nil {
			fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
			return 1
		}
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	var g lifecycle.Group
	g.Add("proxy", p)
	if pprofAddr != "" {
		srv, err := pprofServer(pprofAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
			return 1
		}
		g.Add("pprof", srv)
	}
	if control != nil {
		g.Add("control-client", control)
	}
	if err := g.Run(ctx, logger); err != nil {
		logger.Error("exit", "err", err)
		return 1
	}
	return 0
}

// controlConfig is the control client's view of the proxy (sidecar or
// gateway): who it is, how it authenticates, where callers reach it, which
// services it calls, and its mesh mTLS identity.
func controlConfig(cfg proxy.Config, p *proxy.Proxy) (controlclient.Config, error) {
	cc := controlclient.Config{URL: cfg.ControlPlane, StateDir: cfg.StateDir, Service: cfg.Service,
		Version: cfg.Version, Mode: cfg.Mode}
	var err error
	if cc.Token, err = auth.ClientToken(cfg.TokenFile); err != nil {
		return cc, err
	}
	if cc.TLS, err = auth.ClientTLS("--server-ca", cfg.ServerCA); err != nil {
		return cc, err
	}
	addrs := p.ListenAddrs() // inbound listeners first
	for i := range cfg.Inbound {
		cc.Inbound = append(cc.Inbound, addrs[i])
	}
	if h := p.MeshHooks(); h != nil {
		cc.Mesh, cc.MTLS = h, p.MTLSAddrs()
	}
	seen := map[string]bool{}
	for _, up := range cfg.Upstreams {
		if !seen[up.Service] {
			seen[up.Service] = true
			cc.Upstreams = append(cc.Upstreams, up.Service)
		}
	}
	if cc.StateDir == "" {
		key := cfg.Service
		if len(addrs) > 0 {
			key += "-" + strings.NewReplacer(":", "_", "[", "", "]", "").Replace(addrs[0])
		}
		cc.StateDir = filepath.Join(os.TempDir(), "meshscope-proxy", key)
	}
	return cc, nil
}

// setupProcess applies the config's process settings and returns the
// logger, with attrs on every line. A sidecar serves one app: on one core
// the Go scheduler does not spin up threads to steal each small request's
// goroutines, which costs more CPU than it saves. max_procs sets it;
// GOMAXPROCS overrides.
func setupProcess(cfg proxy.Config, attrs ...any) *slog.Logger {
	if os.Getenv("GOMAXPROCS") == "" && cfg.MaxProcs > 0 {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()})).With(attrs...)
}
