package demo

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fakeConfig(t *testing.T) Config {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("process checks need Linux /proc")
	}
	t.Setenv(fakeEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		HTTPAddr:     "127.0.0.1:0",
		DataDir:      t.TempDir(),
		ServerBinary: self,
		ProxyBinary:  self,
		Rate:         100,
		StopTimeout:  5 * time.Second,
	}
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

func TestRunStartsShopAndStopsEveryChild(t *testing.T) {
	cfg := fakeConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, &out, slog.New(slog.DiscardHandler)) }()

	defer func() {
		if t.Failed() {
			t.Logf("stdout:\n%s", out.String())
			dumpLogs(t, filepath.Join(cfg.DataDir, "logs"))
		}
	}()
	uiLine := regexp.MustCompile(`Meshscope UI: http://127\.0\.0\.1:\d+/`)
	eventually(t, 30*time.Second, "the UI URL on stdout", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("Run returned early: %v\n%s", err, out.String())
		default:
		}
		return uiLine.MatchString(out.String())
	})
	if n := len(childPIDs(t, os.Getpid())); n != 9 {
		t.Errorf("running children = %d, want 9 (server + 7 proxies + the gateway)", n)
	}
	logs := filepath.Join(cfg.DataDir, "logs")
	// Load reaches web through its proxy, and catalog's upstream spreads
	// inventory calls over both versions' proxies.
	for _, f := range []string{"proxy-web.log", "proxy-catalog.log", "proxy-inventory-v1.log", "proxy-inventory-v2.log", "proxy-cart.log", "proxy-checkout.log", "proxy-payments.log"} {
		path := filepath.Join(logs, f)
		eventually(t, 30*time.Second, "inbound traffic in "+f, func() bool { return fileContains(path, "inbound ") })
	}
	eventually(t, 30*time.Second, "load entering through the gateway", func() bool {
		return fileContains(filepath.Join(logs, "proxy-gateway.log"), "gateway gateway ")
	})
	eventually(t, 30*time.Second, "cart calling pricing through its outbound listener", func() bool {
		return fileContains(filepath.Join(logs, "proxy-cart.log"), "outbound pricing GET /prices")
	})
	if _, err := os.Stat(filepath.Join(logs, "proxy-pricing.log")); err == nil {
		t.Error("pricing has a proxy log; it must run without a proxy")
	}
	if !fileContains(filepath.Join(logs, "server.log"), "server --data "+cfg.DataDir) {
		t.Error("server.log does not record the server command line")
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running after Run returned: %v", pids)
	}
	if !strings.Contains(out.String(), "Load: ") || !strings.Contains(out.String(), "(no proxy)") {
		t.Errorf("summary lacks load stats or the unmeshed service:\n%s", out.String())
	}
}

func TestRunStopsAfterDuration(t *testing.T) {
	cfg := fakeConfig(t)
	cfg.Duration = 500 * time.Millisecond
	var out syncBuffer
	if err := Run(context.Background(), cfg, &out, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(out.String(), "Running for 500ms") {
		t.Errorf("output does not mention the duration:\n%s", out.String())
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running after Run returned: %v", pids)
	}
}

func TestRunRetriesProxiesWhenAPortWasTaken(t *testing.T) {
	cfg := fakeConfig(t)
	cfg.Duration = time.Millisecond
	marker := filepath.Join(t.TempDir(), "busy-once")
	t.Setenv("MESHSCOPE_DEMO_FAKE_BUSY_ONCE", marker)
	if err := Run(context.Background(), cfg, io.Discard, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no proxy failed on the first attempt: %v", err)
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running: %v", pids)
	}
}

func TestRunReportsServerFailureWithItsLog(t *testing.T) {
	cfg := fakeConfig(t)
	t.Setenv(fakeEnv, "server-fails")
	err := Run(context.Background(), cfg, io.Discard, nil)
	if err == nil {
		t.Fatal("Run succeeded with a failing server")
	}
	for _, want := range []string{"meshscope server exited", "address already in use", filepath.Join(cfg.DataDir, "logs", "server.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running: %v", pids)
	}
}

func TestRunServerNeverReady(t *testing.T) {
	cfg := fakeConfig(t)
	t.Setenv(fakeEnv, "server-never-ready")
	cfg.ReadyTimeout = 500 * time.Millisecond
	err := Run(context.Background(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "server.log") {
		t.Fatalf("Run error = %v, want one saying the server was not ready, naming its log", err)
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running: %v", pids)
	}
}

func TestRunInterruptedWhileStarting(t *testing.T) {
	cfg := fakeConfig(t)
	t.Setenv(fakeEnv, "server-never-ready")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, io.Discard, nil) }()
	eventually(t, 20*time.Second, "the server to start", func() bool { return len(childPIDs(t, os.Getpid())) == 1 })
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after an interrupt while starting = %v, want nil", err)
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running: %v", pids)
	}
}

func TestRunStopsWhenAProxyDies(t *testing.T) {
	cfg := fakeConfig(t)
	t.Setenv(fakeEnv, "payments-dies")
	err := Run(context.Background(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "meshscope-proxy payments exited") || !strings.Contains(err.Error(), "something broke") {
		t.Fatalf("Run error = %v, want one naming the payments proxy and its last log lines", err)
	}
	if pids := childPIDs(t, os.Getpid()); len(pids) != 0 {
		t.Errorf("children still running: %v", pids)
	}
}

func TestRunNamesBusyHTTPAddress(t *testing.T) {
	cfg := fakeConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg.HTTPAddr = ln.Addr().String()
	err = Run(context.Background(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), cfg.HTTPAddr) {
		t.Fatalf("Run error = %v, want one naming %s", err, cfg.HTTPAddr)
	}
}

func TestRunMissingProxyBinary(t *testing.T) {
	cfg := fakeConfig(t)
	cfg.ProxyBinary = filepath.Join(t.TempDir(), "no-such-proxy")
	err := Run(context.Background(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "no-such-proxy") {
		t.Fatalf("Run error = %v, want one naming the missing binary", err)
	}
}

// Killing the demo with SIGKILL (no chance to clean up) still takes every
// child down: the kernel's parent-death signal.
func TestKilledDemoLeavesNoChild(t *testing.T) {
	fakeConfig(t)
	self, _ := os.Executable()
	cmd := exec.Command(self, "run-demo", t.TempDir())
	cmd.Env = append(os.Environ(), fakeEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	found := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Meshscope UI:") {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("demo runner exited before printing the UI URL")
	}
	go io.Copy(io.Discard, stdout)
	kids := childPIDs(t, cmd.Process.Pid)
	if len(kids) != 9 {
		t.Errorf("demo runner has %d children, want 9 (server, 7 proxies, gateway)", len(kids))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	eventually(t, 20*time.Second, "the killed demo's children to die", func() bool {
		for _, p := range kids {
			if procAlive(p) {
				return false
			}
		}
		return true
	})
}

func dumpLogs(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		t.Logf("%s:\n%s", e.Name(), b)
	}
}
