package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshscope/meshscope/demo/freeport"
)

// upstreamChildArg, as the first argument, makes the benchmark binary
// serve as the upstream process instead of benchmarking.
const upstreamChildArg = "-upstream-child"

// upstream is the benchmark's application: every request gets a fixed-size
// response with Content-Length over keep-alive HTTP/1.1. It runs in its
// own process, as applications do, so that the direct baseline crosses a
// process boundary like every proxied request does.
type upstream struct {
	srv      *http.Server // in-process upstream
	grpc     *grpc.Server // in-process gRPC upstream
	proc     *exec.Cmd    // upstream process
	addr     string       // HTTP/1.1 and h2c (prior knowledge)
	grpcAddr string       // gRPC: grpc.health.v1.Health, SERVING
}

// maxSizedBody is the largest body GET /bytes/N serves.
const maxSizedBody = 2 << 20

// sizedPath is the request path for an N-byte response body: the upstream
// serves its default size on every other path.
func sizedPath(n int) string { return "/bytes/" + strconv.Itoa(n) }

// startUpstreamProcess re-executes the benchmark binary as the upstream
// and reads the address it listens on from its first output line.
func startUpstreamProcess(size int) (*upstream, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("upstream process: %w", err)
	}
	cmd := exec.Command(self, upstreamChildArg, strconv.Itoa(size))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("upstream process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("upstream process: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addrs := strings.Fields(line)
	if err != nil || len(addrs) != 2 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("upstream process did not report its addresses (%q): %v", line, err)
	}
	return &upstream{proc: cmd, addr: addrs[0], grpcAddr: addrs[1]}, nil
}

// serveUpstreamChild is the upstream process: it prints its HTTP and gRPC
// addresses on one line and serves until killed.
func serveUpstreamChild(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: %s SIZE", upstreamChildArg)
	}
	size, err := strconv.Atoi(args[0])
	if err != nil || size < 0 {
		return fmt.Errorf("bad size %q", args[0])
	}
	u, err := startUpstream(size)
	if err != nil {
		return err
	}
	fmt.Println(u.addr, u.grpcAddr)
	select {}
}

func startUpstream(size int) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream listen: %w", err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("upstream gRPC listen: %w", err)
	}
	body := make([]byte, max(size, maxSizedBody))
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := size
		if v, ok := strings.CutPrefix(r.URL.Path, "/bytes/"); ok {
			if m, err := strconv.Atoi(v); err == nil && m >= 0 && m <= maxSizedBody {
				n = m
			} else {
				http.Error(w, fmt.Sprintf("bad size %q: want 0..%d", v, maxSizedBody), http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(body[:n])
	})
	// HTTP/1.1 and cleartext HTTP/2 with prior knowledge on one port, as Go
	// apps serve h2c; a proxy's HTTP/2 requests can reach it as HTTP/2.
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	u := &upstream{
		srv:  &http.Server{Handler: h, Protocols: protos, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute},
		grpc: grpc.NewServer(), addr: ln.Addr().String(), grpcAddr: gln.Addr().String(),
	}
	healthpb.RegisterHealthServer(u.grpc, health.NewServer())
	go func() { _ = u.srv.Serve(ln) }()
	go func() { _ = u.grpc.Serve(gln) }()
	return u, nil
}

func (u *upstream) close() {
	if u.srv != nil {
		_ = u.srv.Close()
	}
	if u.grpc != nil {
		u.grpc.Stop()
	}
	if u.proc != nil {
		_ = u.proc.Process.Kill()
		_ = u.proc.Wait()
	}
}

// freePort returns a loopback address that was free a moment ago, for
// processes that must be told their listen address.
func freePort() (string, error) {
	a, err := freeport.Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

// waitHTTP polls GET url until it answers 200 or the timeout passes.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("process exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", timeout, last)
}
