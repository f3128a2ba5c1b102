package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/cmd/internal/lifecycle"
	cpolicy "github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/proxy"
	"github.com/meshscope/meshscope/proxy/controlclient"
	"github.com/meshscope/meshscope/proxy/gateway"
	"github.com/meshscope/meshscope/proxy/policy/chain"
)

// isGateway reports whether args ask for gateway mode (--gateway).
func isGateway(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--gateway" || a == "-gateway" || a == "--gateway=true" || a == "-gateway=true" {
			return true
		}
	}
	return false
}

// parseGateway reads the gateway's flags: the proxy's own flags (service,
// admin, collector, timeouts, control plane...) except the listener ones,
// and --config naming the kind: Gateway document (not a proxy config).
func parseGateway(args []string, stderr io.Writer) (proxy.Config, string, error) {
	cfg := proxy.DefaultConfig()
	fs := flag.NewFlagSet("meshscope-proxy --gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opaque []string
	proxy.BindFlags(fs, &cfg, &opaque)
	var file string
	fs.Bool("gateway", true, "run as the ingress gateway (routes from a kind: Gateway document)")
	fs.StringVar(&file, "config", "", "kind: Gateway document `file` (static; or apply it through --control-plane)")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if len(opaque) > 0 {
		return cfg, "", errors.New("--opaque does not apply to --gateway")
	}
	if file == "" && cfg.ControlPlane == "" {
		return cfg, "", errors.New("--gateway needs --config FILE (a kind: Gateway document) or --control-plane URL")
	}
	return cfg, file, nil
}

func runGateway(args []string) int {
	cfg, file, err := parseGateway(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
		return 2
	}
	logger := setupProcess(cfg, "service", cfg.Service, "role", "gateway")
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(gateway.Options{Service: cfg.Service, ConfigFile: file, Discovery: cfg.ControlPlane != "",
		MaxHeaderBytes: cfg.MaxHeaderBytes, IdleTimeout: time.Duration(cfg.IdleTimeout), DrainTimeout: time.Duration(cfg.DrainTimeout),
		Registerer: reg, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
		return 1
	}
	edge, err := proxy.NewEdge(cfg, reg, logger, gw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
		return 1
	}
	gw.SetHandler(edge.Handler())
	var control *controlclient.Client
	if cfg.ControlPlane != "" {
		// The same control client as a sidecar's: token, server CA and the
		// mesh mTLS identity, so the gateway calls meshed services over mTLS.
		cc, err := controlConfig(cfg, edge.Proxy)
		if err != nil {
			fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
			return 1
		}
		cc.OnSnapshot = func(s *wire.Snapshot) {
			if file == "" { // a static --config wins over the control plane's document
				gw.Apply(gatewayDoc(s, cfg.Service))
			}
		}
		if cfg.StateDir == "" {
			cc.StateDir = filepath.Join(os.TempDir(), "meshscope-proxy", cfg.Service+"-gateway")
		}
		// Services the static routes reach at fixed addresses are asked
		// for too: their registered endpoints make the addresses that are
		// meshed proxies mTLS peers (verified as that service), while
		// staticRoutes keeps their endpoints out of routing.
		static := gw.StaticServices()
		cc.Upstreams = append(cc.Upstreams, static...)
		if control, err = controlclient.New(cc, staticRoutes{edge.Policies(), static}, reg, logger); err != nil {
			fmt.Fprintln(os.Stderr, "meshscope-proxy:", err)
			return 1
		}
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	var g lifecycle.Group
	g.Add("proxy", edge)
	if control != nil {
		g.Add("control-client", control)
	}
	g.Add("gateway", gw)
	if err := g.Run(ctx, logger); err != nil {
		logger.Error("exit", "err", err)
		return 1
	}
	return 0
}

// gatewayDoc finds the gateway's own Gateway document in a snapshot.
func gatewayDoc(s *wire.Snapshot, service string) *cpolicy.Document {
	svc, ok := s.Services[service]
	if !ok {
		return nil
	}
	for i := range svc.Policies {
		d := &svc.Policies[i]
		if strings.EqualFold(d.Kind, cpolicy.KindGateway) && d.Gateway() != nil {
			return d
		}
	}
	return nil
}

// staticRoutes is the policy engine of a gateway whose static routes name
// services at fixed addresses: snapshots still carry those services (their
// endpoints are the gateway's mTLS peers), but their endpoints and
// policies are not applied, so the routes keep sending to the addresses
// the Gateway document names.
type staticRoutes struct {
	*chain.Engine
	static []string
}

// Apply applies spec without the static-only services.
func (s staticRoutes) Apply(spec chain.Spec) {
	if len(s.static) > 0 {
		kept := make([]chain.Service, 0, len(spec.Services))
		for _, svc := range spec.Services {
			if !slices.Contains(s.static, svc.Name) {
				kept = append(kept, svc)
			}
		}
		spec.Services = kept
	}
	s.Engine.Apply(spec)
}
