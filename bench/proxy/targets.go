package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
)

// nobody is the unprivileged user the benchmark runs its servers as when
// it is itself started as root.
const nobody = 65534

// process is one foreground server started by the benchmark.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func startProcess(dir, name string, argv, env []string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: true}
	}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, then SIGKILL after 5 s.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
	}
}

// logTail returns the last lines of the process's output.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " / ")
}

// target is one way of reaching the upstream: directly or through a proxy.
type target struct {
	key      string // short id: direct, meshscope, meshscope-allcores, meshscope-off, nginx, nginx-1w, haproxy, caddy, ...
	name     string // shown in tables, with the version
	addr     string // where the load generator connects
	admin    string // meshscope-proxy's admin address
	proc     *process
	more     []*process // further processes on the path (a two-hop chain), measured with proc
	skipped  string     // why the target was not measured (empty = measured)
	protocol string     // what the load generator speaks: "" (HTTP/1.1), "h2c" or "grpc"
	path     string     // request path (default "/")
}

func (t *target) pid() int {
	if t.proc == nil {
		return 0
	}
	return t.proc.pid()
}

// pids are the processes whose CPU and memory the target is charged.
func (t *target) pids() []int {
	var out []int
	for _, p := range append([]*process{t.proc}, t.more...) {
		if p != nil {
			out = append(out, p.pid())
		}
	}
	return out
}

// stop stops the target's processes.
func (t *target) stop() {
	t.proc.stop()
	for _, p := range t.more {
		p.stop()
	}
}

// loadConfig is the load generator's view of t.
func (t *target) loadConfig(connections int) loadgen.Config {
	c := loadgen.Config{Addr: t.addr, Path: t.path, Connections: connections}
	switch t.protocol {
	case "h2c":
		c.NewExchanger = loadgen.NewH2C(t.addr, "", t.path)
	case "grpc":
		c.NewExchanger = loadgen.NewGRPCHealth(t.addr, "")
	}
	return c
}

// targetDir makes a per-target directory the unprivileged server can write.
func targetDir(base, name string) (string, error) {
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, nobody, nobody); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// launch starts a server process and waits until a request through addr
// succeeds.
func launch(ctx context.Context, t *target, dir string, argv, env []string, readyURLs ...string) {
	p, err := startProcess(dir, t.key, argv, env)
	if err != nil {
		t.skipped = err.Error()
		return
	}
	t.proc = p
	if t.protocol != "grpc" { // a gRPC app answers no HTTP/1.1 GET
		readyURLs = append(readyURLs, "http://"+t.addr+"/")
	}
	for _, u := range readyURLs {
		if err := waitHTTP(ctx, u, 20*time.Second, p.exited); err != nil {
			t.skipped = fmt.Sprintf("%s did not become ready (%v): %s", t.key, err, p.logTail())
			p.stop()
			t.proc = nil
			return
		}
	}
}

func toolVersion(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	for _, prefix := range []string{"nginx version: nginx/", "HAProxy version "} {
		line = strings.TrimPrefix(line, prefix)
	}
	v, _, _ := strings.Cut(line, " ")
	return strings.TrimPrefix(v, "v")
}

func render(tmpl string, data any) ([]byte, error) {
	t, err := template.New("config").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type proxyConfig struct {
	Dir, Listen, Upstream string
	// Workers is nginx's worker_processes: "auto" (one per core) or "1".
	Workers string
	// H2CListen and GRPCListen, when set, add nginx listeners for
	// cleartext HTTP/2 (to the same HTTP/1.1 upstream) and for gRPC
	// (grpc_pass to GRPCUpstream over HTTP/2).
	H2CListen, GRPCListen, GRPCUpstream string
}

// nginxConf is nginx as an equivalent reverse proxy: Workers worker
// processes, HTTP/1.1 keep-alive to the upstream with an idle pool, no
// access log. nginx 1.22 serves cleartext HTTP/2 with prior knowledge on a
// `listen ... http2` without ssl (no Upgrade from HTTP/1.1), and proxies
// HTTP/2 requests to upstreams over HTTP/1.1 only (proxy_pass); gRPC goes to
// its upstream over HTTP/2 (grpc_pass), with a keep-alive pool.
const nginxConf = `daemon off;
worker_processes {{.Workers}};
pid {{.Dir}}/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/client_body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  keepalive_requests 1000000;
  upstream app {
    server {{.Upstream}};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen {{.Listen}};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
{{- if .H2CListen}}
  server {
    listen {{.H2CListen}} http2;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
{{- end}}
{{- if .GRPCListen}}
  upstream grpcapp {
    server {{.GRPCUpstream}};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen {{.GRPCListen}} http2;
    location / {
      grpc_pass grpc://grpcapp;
    }
  }
{{- end}}
}
`

// haproxyConf is HAProxy in HTTP mode with server-side connection reuse.
const haproxyConf = `global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend bench
  bind {{.Listen}}
  default_backend app
backend app
  http-reuse always
  server app1 {{.Upstream}}
`

// caddyConf is Caddy's reverse_proxy (keep-alive pool by default) without
// the admin API, automatic HTTPS or access logs.
const caddyConf = `{
  admin off
  auto_https off
}
http://{{.Listen}} {
  reverse_proxy {{.Upstream}} {
    transport http {
      keepalive 5m
      keepalive_idle_conns 64
    }
  }
}
`

func startNginx(ctx context.Context, base, up string) *target {
	return startNginxAs(ctx, "nginx", "", base, proxyConfig{Upstream: up, Workers: "auto"})
}

// startNginxOneWorker starts nginx with one worker, the one-core
// comparator of meshscope-proxy's default --max-procs 1, with listeners for
// HTTP/1.1 (the target's addr), h2c and gRPC (returned as cfg.H2CListen and
// cfg.GRPCListen).
func startNginxOneWorker(ctx context.Context, base, up, grpcUp string) (*target, proxyConfig) {
	cfg := proxyConfig{Upstream: up, Workers: "1", GRPCUpstream: grpcUp}
	var err error
	if cfg.H2CListen, err = freePort(); err == nil {
		cfg.GRPCListen, err = freePort()
	}
	if err != nil {
		return &target{key: "nginx-1w", name: "nginx, 1 worker", skipped: err.Error()}, cfg
	}
	return startNginxAs(ctx, "nginx-1w", ", 1 worker", base, cfg), cfg
}

// startNginxAs starts nginx as target key with cfg (Dir and Listen are
// filled in); suffix follows the version in the target's name.
func startNginxAs(ctx context.Context, key, suffix, base string, cfg proxyConfig) *target {
	t := &target{key: key, name: "nginx" + suffix}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.skipped = "nginx not installed (make bench-deps)"
			return t
		}
	}
	if v := toolVersion(bin, "-v"); v != "" {
		t.name = "nginx " + v + suffix
	}
	startConfiguredWith(ctx, t, base, cfg, "nginx.conf", nginxConf, func(dir, conf string) []string {
		return []string{bin, "-e", "stderr", "-p", dir, "-c", conf}
	}, nil)
	return t
}

func startHAProxy(ctx context.Context, base, up string) *target {
	t := &target{key: "haproxy", name: "HAProxy"}
	bin, err := lookSbin("haproxy")
	if err != nil {
		t.skipped = "haproxy not installed (make bench-deps)"
		return t
	}
	if v := toolVersion(bin, "-v"); v != "" {
		t.name = "HAProxy " + v
	}
	startConfigured(ctx, t, base, up, "haproxy.cfg", haproxyConf, func(dir, conf string) []string {
		return []string{bin, "-db", "-f", conf}
	}, nil)
	return t
}

func startCaddy(ctx context.Context, base, up string) *target {
	t := &target{key: "caddy", name: "Caddy"}
	bin, err := lookSbin("caddy")
	if err != nil {
		t.skipped = "caddy not installed (make bench-deps)"
		return t
	}
	if v := toolVersion(bin, "version"); v != "" {
		t.name = "Caddy " + v
	}
	startConfigured(ctx, t, base, up, "Caddyfile", caddyConf, func(dir, conf string) []string {
		return []string{bin, "run", "--config", conf, "--adapter", "caddyfile"}
	}, func(dir string) []string {
		return []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir + "/data", "XDG_CONFIG_HOME=" + dir + "/config"}
	})
	return t
}

func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New(name + " not found")
}

func startConfigured(ctx context.Context, t *target, base, up, confName, tmpl string, argv func(dir, conf string) []string, env func(dir string) []string) {
	startConfiguredWith(ctx, t, base, proxyConfig{Upstream: up}, confName, tmpl, argv, env)
}

// startConfiguredWith renders tmpl with cfg (Dir and Listen filled in) and
// launches the server on it.
func startConfiguredWith(ctx context.Context, t *target, base string, cfg proxyConfig, confName, tmpl string, argv func(dir, conf string) []string, env func(dir string) []string) {
	dir, err := targetDir(base, t.key)
	if err != nil {
		t.skipped = err.Error()
		return
	}
	listen, err := freePort()
	if err != nil {
		t.skipped = err.Error()
		return
	}
	t.addr = listen
	cfg.Dir, cfg.Listen = dir, listen
	conf, err := render(tmpl, cfg)
	if err != nil {
		t.skipped = fmt.Sprintf("render %s: %v", confName, err)
		return
	}
	confPath := filepath.Join(dir, confName)
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.skipped = err.Error()
		return
	}
	var e []string
	if env != nil {
		e = env(dir)
	}
	launch(ctx, t, dir, argv(dir, confPath), e)
}

// meshscopeArgs builds the meshscope-proxy command line for an outbound
// listener to the upstream; telemetry on = spans and metrics exported to
// the OTLP sink, off = --no-tracing --no-metrics and no collector.
func meshscopeArgs(bin, listen, admin, up, collector string, telemetry bool, extra []string) []string {
	args := []string{bin,
		"--service", "bench-client",
		"--admin", admin,
		"--upstream", listen + "=bench-upstream",
	}
	if up != "" { // else discovered through --control-plane
		args[len(args)-1] += "@" + up
	}
	if telemetry {
		args = append(args, "--collector", collector)
	} else {
		args = append(args, "--no-tracing", "--no-metrics")
	}
	return append(args, extra...)
}

// startMeshscopeAllCores starts meshscope-proxy with metrics and tracing on
// and --max-procs 0 (GOMAXPROCS = cores), for the closed-loop comparison
// with nginx and HAProxy, which run a worker per core.
func startMeshscopeAllCores(ctx context.Context, base, bin, up, collector string, extra []string) *target {
	t := startMeshscopeAs(ctx, base, bin, up, collector, true, append([]string{"--max-procs", "0"}, extra...),
		"meshscope-allcores", "meshscope-proxy, metrics+tracing on, all cores (--max-procs 0)")
	return t
}

func startMeshscope(ctx context.Context, base, bin, up, collector string, telemetry bool, extra []string) *target {
	key, name := "meshscope", "meshscope-proxy, metrics+tracing on"
	if !telemetry {
		key, name = "meshscope-off", "meshscope-proxy, metrics+tracing off"
	}
	return startMeshscopeAs(ctx, base, bin, up, collector, telemetry, extra, key, name)
}

func startMeshscopeAs(ctx context.Context, base, bin, up, collector string, telemetry bool, extra []string, key, name string) *target {
	return startMeshscopeTarget(ctx, &target{key: key, name: name}, base, bin, up, collector, telemetry, extra)
}

// startMeshscopeTarget starts meshscope-proxy as t (key, name and protocol
// set) with an outbound listener to up.
func startMeshscopeTarget(ctx context.Context, t *target, base, bin, up, collector string, telemetry bool, extra []string) *target {
	if bin == "" {
		t.skipped = "meshscope-proxy could not be built"
		return t
	}
	dir, err := targetDir(base, t.key)
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	listen, err := freePort()
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	admin, err := freePort()
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	t.addr, t.admin = listen, admin
	launch(ctx, t, dir, meshscopeArgs(bin, listen, admin, up, collector, telemetry, extra), nil, "http://"+admin+"/ready")
	return t
}
