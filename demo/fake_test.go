package demo

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/policy"
)

// The test binary doubles as fake `meshscope server` and fake
// `meshscope-proxy` (and as a demo runner for the kill test) when
// MESHSCOPE_DEMO_FAKE is set, so Run's orchestration is tested without the
// real binaries.
const fakeEnv = "MESHSCOPE_DEMO_FAKE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) != "" {
		os.Exit(runFake(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runFake(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch {
	case len(args) > 0 && args[0] == "server":
		return fakeServer(ctx, args[1:])
	case len(args) > 0 && args[0] == "run-demo":
		return fakeDemoRunner(ctx, args[1:])
	default:
		return fakeProxy(ctx, args)
	}
}

func fakeServer(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	httpAddr := fs.String("http", "", "")
	fs.String("data", "", "")
	fs.String("otlp-grpc", "", "")
	fs.String("otlp-http", "", "")
	fs.String("config", "", "")
	authFile := fs.String("auth-file", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Getenv(fakeEnv) == "server-fails" {
		fmt.Println("error: listen tcp " + *httpAddr + ": bind: address already in use")
		return 1
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if os.Getenv(fakeEnv) == "server-never-ready" {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	// The policy API: the demo's policy set must load.
	mux.HandleFunc("POST /api/mesh/v1/apply", func(w http.ResponseWriter, r *http.Request) {
		if *authFile != "" {
			// The demo's own calls carry its admin token.
			f, err := auth.LoadFile(*authFile)
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if err != nil || len(f.Tokens) == 0 || f.Tokens[0].Role != auth.RoleAdmin || auth.HashToken(tok) != f.Tokens[0].SHA256 {
				http.Error(w, `{"error":"unauthenticated"}`, http.StatusUnauthorized)
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		if _, err := policy.Load(body); err != nil {
			http.Error(w, `{"error":"`+err.Error()+`"}`, http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"version":1,"changed":true}`+"\n")
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	<-ctx.Done()
	srv.Close()
	return 0
}

// fakeProxy forwards like meshscope-proxy would (round-robin over an
// upstream's addresses) and prints one line per forwarded request.
func fakeProxy(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	service := fs.String("service", "", "")
	fs.String("version", "v1", "")
	inbound := fs.String("inbound", "", "")
	var upstreams multiFlag
	fs.Var(&upstreams, "upstream", "")
	var templates multiFlag
	fs.Var(&templates, "route-template", "")
	fs.String("collector", "", "")
	admin := fs.String("admin", "", "")
	fs.String("mode", "observe", "")
	fs.String("control-plane", "", "")
	fs.String("state-dir", "", "")
	gateway := fs.Bool("gateway", false, "")
	config := fs.String("config", "", "")
	fs.String("token-file", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// With MESHSCOPE_DEMO_FAKE_BUSY_ONCE=FILE the first proxy to create FILE
	// fails as if its port had been taken.
	if marker := os.Getenv("MESHSCOPE_DEMO_FAKE_BUSY_ONCE"); marker != "" {
		if f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			fmt.Println("error: listen tcp " + *inbound + ": bind: address already in use")
			return 1
		}
	}
	var servers []*http.Server
	serve := func(listen string, h http.Handler) bool {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Println("error:", err)
			return false
		}
		s := &http.Server{Handler: h}
		servers = append(servers, s)
		go s.Serve(ln)
		return true
	}
	forward := func(dir, name string, addrs []string) http.Handler {
		var n atomic.Uint64
		return &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			addr := addrs[n.Add(1)%uint64(len(addrs))]
			r.SetURL(&url.URL{Scheme: "http", Host: addr})
			fmt.Printf("%s %s %s %s -> %s\n", dir, name, r.In.Method, r.In.URL.Path, addr)
		}}
	}
	if *gateway {
		// The gateway: TLS on the document's first listener, forwarding
		// to the first route's static address; a checkout without a token
		// is answered 401 as the real gateway would.
		b, err := os.ReadFile(*config)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		docs, err := policy.Load(b)
		if err != nil || len(docs) != 1 || docs[0].Gateway() == nil {
			fmt.Println("error: bad gateway document:", err)
			return 1
		}
		g := docs[0].Gateway()
		c := g.Listeners[0].TLS.Certificates[0]
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		_, addrs, _ := policy.ParseGatewayService(g.Routes[0].Service)
		fwd := forward("gateway", *service, addrs)
		ln, err := tls.Listen("tcp", g.Listeners[0].Address, &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/checkout" && r.Header.Get("Authorization") == "" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			fwd.ServeHTTP(w, r)
		})}
		servers = append(servers, s)
		go s.Serve(ln)
	}
	if *inbound != "" {
		listen, app, _ := strings.Cut(*inbound, "=")
		if !serve(listen, forward("inbound", *service, []string{app})) {
			return 1
		}
	}
	for _, u := range upstreams {
		listen, rest, _ := strings.Cut(u, "=")
		name, addrs, _ := strings.Cut(rest, "@")
		if !serve(listen, forward("outbound", name, strings.Split(addrs, ","))) {
			return 1
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	if !serve(*admin, mux) {
		return 1
	}
	if os.Getenv(fakeEnv) == "payments-dies" && *service == "payments" {
		time.Sleep(300 * time.Millisecond)
		fmt.Println("fatal: something broke")
		return 3
	}
	<-ctx.Done()
	for _, s := range servers {
		s.Close()
	}
	return 0
}

// fakeDemoRunner runs Run with the fake binaries, data dir args[0].
func fakeDemoRunner(ctx context.Context, args []string) int {
	self, _ := os.Executable()
	cfg := Config{HTTPAddr: "127.0.0.1:0", DataDir: args[0], ServerBinary: self, ProxyBinary: self, Rate: 50}
	if err := Run(ctx, cfg, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// childPIDs lists the live processes whose parent is pid (Linux /proc).
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []int
	for _, e := range entries {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		state, ppid, ok := procStat(p)
		if ok && ppid == pid && state != "Z" {
			out = append(out, p)
		}
	}
	return out
}

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...; comm may contain spaces, so split after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	if _, err := fmt.Sscanf(f[1], "%d", &ppid); err != nil {
		return "", 0, false
	}
	return f[0], ppid, true
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
