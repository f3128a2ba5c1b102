// Package rulertest runs a real Alertmanager for tests of the rules engine
// and of the binaries that notify it.
package rulertest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// amConfig routes every alert to a receiver that does nothing, grouping fast.
const amConfig = "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n"

// StartAlertmanager runs Debian's prometheus-alertmanager on loopback until
// the test ends and returns its base URL once it is ready. The test is
// skipped when the binary is not installed (make test installs it).
func StartAlertmanager(t testing.TB) string {
	t.Helper()
	return StartAlertmanagerConfig(t, amConfig)
}

// StartAlertmanagerConfig is StartAlertmanager with the given
// alertmanager.yml (e.g. a webhook receiver of the test's own).
func StartAlertmanagerConfig(t testing.TB, config string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("prometheus-alertmanager not installed (make test installs it: apt-get install prometheus-alertmanager)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	web, cluster := freeAddr(t), freeAddr(t)
	var out lockedBuffer
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir,
		"--web.listen-address="+web, "--cluster.listen-address="+cluster)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting alertmanager: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	u := "http://" + web
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(u + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return u
			}
		}
		select {
		case <-exited:
			t.Fatalf("alertmanager exited before it was ready:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready at %s after 60s:\n%s", u, out.String())
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects the process's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
