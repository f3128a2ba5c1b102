package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/meshscope/meshscope/demo/freeport"
)

// instance is one running demo service with its ports.
type instance struct {
	spec     ServiceSpec
	appLn    net.Listener
	appAddr  string            // where the service itself listens
	inbound  string            // proxy inbound listener (meshed) or appAddr (unmeshed): where callers send
	admin    string            // proxy admin address (meshed only)
	outbound map[string]string // dependency service → this proxy's outbound listener
	server   *http.Server
	proxy    *child
}

// Run runs the demo until ctx is cancelled (or cfg.Duration passed once
// everything is up): the server, the shop's services and their proxies, and
// the load. It prints the UI URL and a summary to stdout and logs progress to
// logger. On return every child process it started has exited.
func Run(ctx context.Context, cfg Config, stdout io.Writer, logger *slog.Logger) (err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	cfg = cfg.WithDefaults()
	serverBin, proxyBin, err := resolveBinaries(cfg)
	if err != nil {
		return err
	}
	logDir := filepath.Join(cfg.DataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("demo: creating log directory: %w", err)
	}
	r := &run{cfg: cfg, logger: logger, sp: newSpawner(), logDir: logDir, proxyBin: proxyBin}
	defer func() { err = errors.Join(err, r.stop()) }()
	startupErr := func(err error) error {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}

	// 1. The server, on the HTTP address and two free OTLP ports. The HTTP
	// listener is held while the OTLP ports are chosen, so they differ.
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("demo: http address %s is not available (another meshscope running? choose another with --http): %w", cfg.HTTPAddr, err)
	}
	httpAddr := httpLn.Addr().String()
	otlp, err := freeAddrs(2)
	httpLn.Close()
	if err != nil {
		return err
	}
	otlpGRPC, otlpHTTP := otlp[0], otlp[1]
	serverArgs := []string{"server", "--data", cfg.DataDir, "--http", httpAddr, "--otlp-grpc", otlpGRPC, "--otlp-http", otlpHTTP}
	if cfg.ServerConfig != "" {
		serverArgs = append(serverArgs, "--config", cfg.ServerConfig)
	}
	if !cfg.NoAuth {
		if r.auth, err = newDemoAuth(cfg.DataDir); err != nil {
			return err
		}
		serverArgs = append(serverArgs, "--auth-file", r.auth.authFile)
		ctx = withToken(ctx, r.auth.adminToken)
	}
	logger.Info("starting server", "http", httpAddr, "otlp_grpc", otlpGRPC, "log", filepath.Join(logDir, "server.log"))
	if r.server, err = r.sp.start("meshscope server", serverBin, serverArgs, filepath.Join(logDir, "server.log")); err != nil {
		return err
	}
	if err := waitReady(ctx, "http://"+httpAddr+"/ready", r.server, cfg.ReadyTimeout); err != nil {
		return startupErr(err)
	}
	if err := applyDocuments(ctx, httpAddr, "policies", policiesYAML); err != nil {
		return startupErr(err)
	}
	r.controlPlane = "http://" + httpAddr

	// 2. The services' listeners, then their proxies.
	if r.instances, err = listenShop(withScenario(Shop(), cfg.Scenario)); err != nil {
		return err
	}
	if err := r.startProxies(ctx, otlpGRPC); err != nil {
		return startupErr(err)
	}
	if err := applyDocuments(ctx, httpAddr, "SLOs", slosYAML); err != nil {
		return startupErr(err)
	}
	if cfg.Scenario == ScenarioNone {
		if err := applyDocuments(ctx, httpAddr, "guards", guardsYAML); err != nil {
			return startupErr(err)
		}
	}
	if cfg.Scenario != ScenarioNone {
		if err := applyDocuments(ctx, httpAddr, "the inventory v2 rollout", []byte(rolloutYAML)); err != nil {
			return startupErr(err)
		}
		logger.Info("scenario "+cfg.Scenario+": rolling inventory v2 out", "status", "meshscope rollout status inventory-v2", "ui", "http://"+httpAddr+"/rollouts/inventory-v2")
	}

	// 3. The services, calling their dependencies through their proxies.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for i, in := range r.instances {
		backends := map[string]string{}
		for dep, addr := range in.outbound {
			backends[dep] = "http://" + addr
		}
		h, err := NewService(in.spec, backends, client, uint64(i+1))
		if err != nil {
			return err
		}
		in.server = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go in.server.Serve(in.appLn)
	}

	// 4. The ingress gateway in front of web's inbound proxy.
	web := r.instances[0]
	gw, err := newGatewaySetup(filepath.Join(cfg.DataDir, "gateway"), web.inbound)
	if err != nil {
		return err
	}
	logger.Info("starting the ingress gateway", "listen", gw.listen, "log", filepath.Join(logDir, "proxy-gateway.log"))
	// With the control plane the gateway holds a mesh identity, so its hop
	// to web is mTLS like every other meshed hop; its routes stay static.
	gwArgs := append(gw.args(otlpGRPC), "--control-plane", r.controlPlane,
		"--state-dir", filepath.Join(cfg.DataDir, "proxy-state", "gateway"))
	if r.auth != nil {
		gwArgs = append(gwArgs, "--token-file", r.auth.proxyTokenFile)
	}
	if r.gateway, err = r.sp.start("meshscope-proxy gateway", r.proxyBin, gwArgs, filepath.Join(logDir, "proxy-gateway.log")); err != nil {
		return err
	}
	if err := waitReady(ctx, "http://"+gw.admin+"/ready", r.gateway, cfg.ReadyTimeout); err != nil {
		return startupErr(err)
	}

	// 5. Load through the gateway.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	if cfg.Duration > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeout(runCtx, cfg.Duration)
		defer cancelT()
	}
	var load *Load
	loadDone := make(chan LoadStats, 1)
	if cfg.Rate > 0 {
		load, err = NewLoad(gw.url(), cfg.Rate, 64, gw.client(), 42)
		if err != nil {
			return err
		}
		load.Authorize = gw.authorize
		go func() { loadDone <- load.Run(runCtx) }()
	} else {
		loadDone <- LoadStats{}
	}

	if r.auth != nil {
		fmt.Fprintf(stdout, "Admin token: %s\n  (in %s; sign in to the UI with it, or meshscope --token-file %s)\n", r.auth.adminToken, r.auth.adminTokenFile, r.auth.adminTokenFile)
	}
	printSummary(stdout, cfg, httpAddr, otlpGRPC, otlpHTTP, logDir, r.instances, gw)
	logger.Info("demo running", "ui", "http://"+httpAddr+"/", "proxies", countMeshed(r.instances), "rate", cfg.Rate)

	// 6. Run until cancelled, the duration passed, or a child died.
	children := r.children()
	died := make(chan *child, len(children))
	for _, c := range children {
		go func() {
			if c.waitDone(runCtx) {
				died <- c
			}
		}()
	}
	var runErr error
	select {
	case <-runCtx.Done():
		logger.Info("stopping demo", "reason", context.Cause(runCtx))
	case c := <-died:
		runErr = c.exitError()
		logger.Error("demo process died, stopping", "process", c.name, "log", c.logPath)
	}
	cancelRun()
	stats := <-loadDone
	if load != nil {
		fmt.Fprintf(stdout, "Load: %s\n", stats)
	}
	return runErr
}

// run is the state of one Run, for stopping.
type run struct {
	cfg      Config
	logger   *slog.Logger
	sp       *spawner
	logDir   string
	proxyBin string
	auth     *demoAuth // nil with --no-auth
	// controlPlane is the server's URL the proxies register with.
	controlPlane string
	server       *child
	gateway      *child
	instances    []*instance
}

func (r *run) children() []*child {
	var out []*child
	if r.server != nil {
		out = append(out, r.server)
	}
	if r.gateway != nil {
		out = append(out, r.gateway)
	}
	for _, in := range r.instances {
		if in.proxy != nil {
			out = append(out, in.proxy)
		}
	}
	return out
}

// startProxies chooses the proxies' ports, starts one proxy per meshed
// instance and waits for all to be ready. Ports are free when chosen but
// another process may take one before a proxy binds it; then every proxy is
// stopped and started again on new ports (up to 3 attempts).
func (r *run) startProxies(ctx context.Context, collector string) error {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		err := r.tryStartProxies(ctx, collector)
		if err == nil {
			return nil
		}
		if attempt == attempts || ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		r.logger.Warn("a proxy port was taken; restarting the proxies on new ports", "err", err)
		if err := r.stopProxies(); err != nil {
			return err
		}
	}
}

func (r *run) tryStartProxies(ctx context.Context, collector string) error {
	if err := assignProxyPorts(r.instances); err != nil {
		return err
	}
	for _, in := range r.instances {
		if !in.spec.Meshed {
			continue
		}
		args := append(proxyArgs(in, r.instances, collector), "--control-plane", r.controlPlane,
			"--state-dir", filepath.Join(r.cfg.DataDir, "proxy-state", in.spec.ID()))
		if r.auth != nil {
			args = append(args, "--token-file", r.auth.proxyTokenFile)
		}
		logPath := filepath.Join(r.logDir, "proxy-"+in.spec.ID()+".log")
		c, err := r.sp.start("meshscope-proxy "+in.spec.ID(), r.proxyBin, args, logPath)
		if err != nil {
			return err
		}
		in.proxy = c
	}
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, in := range r.instances {
		if in.proxy == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := waitReady(ctx, "http://"+in.admin+"/ready", in.proxy, r.cfg.ReadyTimeout); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopProxies stops every proxy at once.
func (r *run) stopProxies() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, in := range r.instances {
		if in.proxy == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.proxy.stop(r.cfg.StopTimeout); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			in.proxy = nil
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop stops everything still running: proxies first, then the services,
// the server last (so its stores shut down after the last telemetry).
func (r *run) stop() error {
	var errs []error
	if r.gateway != nil {
		errs = append(errs, r.gateway.stop(r.cfg.StopTimeout))
		r.gateway = nil
	}
	errs = append(errs, r.stopProxies())
	for _, in := range r.instances {
		if in.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.StopTimeout)
			in.server.Shutdown(ctx)
			cancel()
		} else {
			in.appLn.Close()
		}
	}
	if r.server != nil {
		errs = append(errs, r.server.stop(r.cfg.StopTimeout))
		r.logger.Info("demo stopped")
	}
	r.sp.close()
	return errors.Join(errs...)
}

// listenShop opens every instance's service listener on a free port.
func listenShop(specs []ServiceSpec) ([]*instance, error) {
	var out []*instance
	for _, s := range specs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, in := range out {
				in.appLn.Close()
			}
			return nil, fmt.Errorf("demo: listening for service %s: %w", s.ID(), err)
		}
		out = append(out, &instance{spec: s, appLn: ln, appAddr: ln.Addr().String(), inbound: ln.Addr().String()})
	}
	return out, nil
}

// assignProxyPorts gives every meshed instance free inbound, admin and
// outbound (one per dependency) addresses, all distinct and distinct from the
// (open) service listeners.
func assignProxyPorts(instances []*instance) error {
	need := 0
	for _, in := range instances {
		if in.spec.Meshed {
			need += 2 + len(in.spec.Dependencies())
		}
	}
	addrs, err := freeAddrs(need)
	if err != nil {
		return err
	}
	for _, in := range instances {
		in.outbound = map[string]string{}
		if !in.spec.Meshed {
			in.inbound = in.appAddr
			continue
		}
		in.inbound, in.admin = addrs[0], addrs[1]
		for i, dep := range in.spec.Dependencies() {
			in.outbound[dep] = addrs[2+i]
		}
		addrs = addrs[2+len(in.spec.Dependencies()):]
	}
	return nil
}

// proxyArgs are the meshscope-proxy flags of a meshed instance: its inbound
// listener in front of the app, and one outbound listener per dependency
// whose upstream lists every instance of that dependency (round-robin).
func proxyArgs(in *instance, all []*instance, collector string) []string {
	args := []string{
		"--service", in.spec.Name,
		"--version", in.spec.Version,
		"--inbound", in.inbound + "=" + in.appAddr,
		"--collector", collector,
		"--admin", in.admin,
		"--mode", "observe",
	}
	// Route templates: the instance's own routes (inbound) and those of
	// every dependency (outbound), so spans and the route label name them.
	seen := map[string]bool{}
	addTemplates := func(s ServiceSpec) {
		for _, t := range s.RouteTemplates() {
			if !seen[t] {
				seen[t] = true
				args = append(args, "--route-template", t)
			}
		}
	}
	addTemplates(in.spec)
	for _, dep := range in.spec.Dependencies() {
		var addrs []string
		for _, o := range all {
			if o.spec.Name == dep {
				addrs = append(addrs, o.inbound)
				addTemplates(o.spec)
			}
		}
		args = append(args, "--upstream", in.outbound[dep]+"="+dep+"@"+strings.Join(addrs, ","))
	}
	return args
}

func printSummary(w io.Writer, cfg Config, httpAddr, otlpGRPC, otlpHTTP, logDir string, instances []*instance, gw *gatewaySetup) {
	fmt.Fprintf(w, "Meshscope demo: %d services, %d proxies\n", countServices(instances), countMeshed(instances))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  server\thttp %s\totlp-grpc %s\totlp-http %s\tdata %s\n", httpAddr, otlpGRPC, otlpHTTP, cfg.DataDir)
	for _, in := range instances {
		if in.spec.Meshed {
			fmt.Fprintf(tw, "  %s %s\tapp %s\tproxy %s\tadmin %s\n", in.spec.Name, in.spec.Version, in.appAddr, in.inbound, in.admin)
		} else {
			fmt.Fprintf(tw, "  %s %s\tapp %s\t(no proxy)\n", in.spec.Name, in.spec.Version, in.appAddr)
		}
	}
	fmt.Fprintf(tw, "  %s\tTLS %s\tadmin %s\t(ingress: JWT on POST /checkout)\n", gatewayService, gw.listen, gw.admin)
	tw.Flush()
	_, port, _ := net.SplitHostPort(gw.listen)
	fmt.Fprintf(w, "Gateway: %s/ (TLS with a certificate from the demo CA %s)\n", gw.url(), gw.caFile)
	fmt.Fprintf(w, "  curl --cacert %s --resolve %s:%s:127.0.0.1 %s/\n", gw.caFile, gatewayHost, port, gw.url())
	fmt.Fprintf(w, "Demo CA root certificate:\n%s", gw.caPEM)
	if cfg.Rate > 0 {
		fmt.Fprintf(w, "Load: %g requests/s to %s/ through the gateway; %g%% of checkouts carry an expired token (401)\n", cfg.Rate, gw.url(), ExpiredTokenShare*100)
	}
	fmt.Fprintf(w, "Logs: %s (server.log, proxy-<service>.log)\n", logDir)
	if cfg.Scenario == ScenarioNone {
		fmt.Fprintf(w, "Guards: inventory v2 fails half of its requests from %s after the start; the inventory-fallback guard shifts inventory to v1 (http://%s/slos/inventory-availability); payments-shed records what it would shed (dry-run)\n",
			InventoryV2FailsAfter, httpAddr)
	}
	fmt.Fprintf(w, "Meshscope UI: http://%s/\n", httpAddr)
	if cfg.Duration > 0 {
		fmt.Fprintf(w, "Running for %s; Ctrl-C stops earlier.\n", cfg.Duration)
	} else {
		fmt.Fprintln(w, "Press Ctrl-C to stop.")
	}
}

func countServices(instances []*instance) int {
	seen := map[string]bool{}
	for _, in := range instances {
		seen[in.spec.Name] = true
	}
	return len(seen)
}

func countMeshed(instances []*instance) int {
	n := 0
	for _, in := range instances {
		if in.spec.Meshed {
			n++
		}
	}
	return n
}

// waitReady polls url until it answers 200, the child exits, ctx ends or
// timeout passes.
func waitReady(ctx context.Context, url string, c *child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if res, err := client.Do(req); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return c.exitError()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready at %s within %s; last lines of %s:\n%s", c.name, url, timeout, c.logPath, tailFile(c.logPath, 15))
			}
			return fmt.Errorf("waiting for %s: %w", c.name, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// resolveBinaries finds the server and proxy binaries.
func resolveBinaries(cfg Config) (server, proxy string, err error) {
	self, selfErr := os.Executable()
	server = cfg.ServerBinary
	if server == "" {
		if selfErr != nil {
			return "", "", fmt.Errorf("demo: finding the meshscope binary: %w", selfErr)
		}
		server = self
	}
	proxy = cfg.ProxyBinary
	if proxy == "" {
		var tried []string
		if selfErr == nil {
			next := filepath.Join(filepath.Dir(self), "meshscope-proxy")
			tried = append(tried, next)
			if st, err := os.Stat(next); err == nil && !st.IsDir() {
				proxy = next
			}
		}
		if proxy == "" {
			p, err := exec.LookPath("meshscope-proxy")
			if err != nil {
				return "", "", fmt.Errorf("demo: meshscope-proxy binary not found next to the running binary (%s) or in $PATH; run `make build` or set the proxy binary", strings.Join(tried, ", "))
			}
			proxy = p
		}
	}
	for _, b := range []string{server, proxy} {
		if _, err := os.Stat(b); err != nil {
			return "", "", fmt.Errorf("demo: binary %w", err)
		}
	}
	return server, proxy, nil
}

// freeAddrs returns n distinct loopback addresses with ports free right
// now, from below the kernel's ephemeral range (package freeport says why).
func freeAddrs(n int) ([]string, error) {
	addrs, err := freeport.Addrs(n)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return addrs, nil
}
