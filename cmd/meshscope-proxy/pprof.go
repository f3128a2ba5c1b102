package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/meshscope/meshscope/cmd/internal/lifecycle"
)

// pprofFlag names the opt-in profiling listener: Go's runtime profiles
// (CPU, heap, goroutines; net/http/pprof) on their own loopback port, apart
// from the admin port, so that benchmarks and performance work can profile
// a running sidecar. Off unless given.
const pprofFlag = "pprof"

// checkPprofAddr accepts an empty address (off) or a loopback host:port:
// profiles expose the process's internals and cost CPU while taken.
func checkPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: want a loopback HOST:PORT: %w", pprofFlag, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--%s %q: host must be loopback (127.0.0.1, ::1 or localhost): profiles expose the process's internals", pprofFlag, addr)
	}
	return nil
}

// pprofServer serves /debug/pprof/ on addr.
func pprofServer(addr string) (*lifecycle.HTTPServer, error) {
	ln, err := lifecycle.Listen(pprofFlag, addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return &lifecycle.HTTPServer{Server: srv, Listener: ln, DrainTimeout: time.Second}, nil
}
