package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/demo/freeport"
)

// lockedBuffer collects a child's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDrainOnSIGTERM builds the real binary, sends SIGTERM while a request
// is in flight, and checks that the request completes, new connections are
// refused, and the process exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "meshscope-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/meshscope/meshscope/cmd/meshscope-proxy").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	addrs, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	listen, admin := addrs[0], addrs[1]
	cmd := exec.Command(bin, "--service", "drainer", "--inbound", listen+"="+app, "--admin", admin, "--drain-timeout", "20s")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("proxy output:\n%s", logs.String())
		}
	})
	eventually(t, "/ready", func() bool {
		resp, err := http.Get("http://" + admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-arrived
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-exited:
		t.Fatalf("exited before the in-flight request finished: %v", err)
	default:
	}
	if resp, err := http.Get("http://" + admin + "/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/ready while draining: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	close(release)
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v", r)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("proxy did not exit after draining")
	}
	if !strings.Contains(logs.String(), "draining") {
		t.Errorf("no drain in logs:\n%s", logs.String())
	}
}

// TestTCPSplicesRaceWithDrainWait: connections accepted before the drain
// whose protocol is decided during it (their first bytes arrive after
// the drain began) are spliced to the upstream and waited for: Run returns
// only after every such splice ended, and the WaitGroup is never added to
// while the drain waits on it (run with -race).
func TestTCPSplicesRaceWithDrainWait(t *testing.T) {
	srv := startTCPServer(t, "")
	cfg := baseConfig("tcpclient")
	cfg.DetectTimeout = Duration(5 * time.Second)
	cfg.DrainTimeout = Duration(20 * time.Second)
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "db", Addrs: []string{srv}}}
	p, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan time.Time, 1)
	go func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		runDone <- time.Now()
	}()
	<-p.Ready()

	const clients = 40
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", p.ListenAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// Every connection is accepted and waits in protocol detection.
	time.Sleep(300 * time.Millisecond)
	cancel()
	time.Sleep(100 * time.Millisecond) // the drain has begun

	var mu sync.Mutex
	var lastClose time.Time
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			c.SetDeadline(time.Now().Add(15 * time.Second))
			msg := fmt.Sprintf("\x00binary %d\n", i)
			if _, err := io.WriteString(c, msg); err != nil {
				t.Errorf("client %d: write: %v", i, err)
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "ECHO "+msg {
				t.Errorf("client %d accepted before the drain: echo %q, %v", i, line, err)
			}
			time.Sleep(200 * time.Millisecond) // the splice outlives the drain's start
			mu.Lock()
			lastClose = time.Now()
			mu.Unlock()
			c.Close()
		})
	}
	wg.Wait()
	var returned time.Time
	select {
	case returned = <-runDone:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after every client closed")
	}
	if returned.Before(lastClose) {
		t.Errorf("Run returned %s before the last spliced connection closed: splices started during the drain were not waited for",
			lastClose.Sub(returned).Round(time.Millisecond))
	}
	p.tcpMu.Lock()
	open := len(p.tcpConns)
	p.tcpMu.Unlock()
	if open != 0 {
		t.Errorf("%d connections still tracked after Run returned", open)
	}
}
