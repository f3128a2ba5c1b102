// Package rulertest runs a real Alertmanager for tests of the rules engine
// and of the binaries that notify it.
package rulertest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/demo/freeport"
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
//
// The web port is picked free (package freeport) and released before
// Alertmanager binds it, so another process can still take it in between;
// when Alertmanager then exits on "address already in use", it is started
// again on a new port (three attempts). Its gossip cluster is switched
// off, so it needs no second port.
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
	const attempts = 3
	for attempt := 1; ; attempt++ {
		u, out, err := startAlertmanager(t, bin, cfg, dir)
		if err == nil {
			return u
		}
		if attempt < attempts && strings.Contains(out, "address already in use") {
			t.Logf("alertmanager attempt %d: %v; retrying on another port", attempt, err)
			continue
		}
		t.Fatalf("%v:\n%s", err, out)
	}
}

// startAlertmanager starts one Alertmanager and waits until it is ready.
// On error it returns the process's output; the process has then exited
// or been killed.
func startAlertmanager(t testing.TB, bin, cfg, dir string) (base, output string, err error) {
	web := freeAddr(t)
	var out lockedBuffer
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir,
		"--web.listen-address="+web, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", "", fmt.Errorf("starting alertmanager: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() { _ = cmd.Process.Kill(); <-exited }
	u := "http://" + web
	// A port taken by a process that does not answer HTTP must not hang the probe.
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := client.Get(u + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return u, "", nil
			}
		}
		select {
		case <-exited:
			return "", out.String(), errors.New("alertmanager exited before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", out.String(), fmt.Errorf("alertmanager not ready at %s after 60s", u)
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	addrs, err := freeport.Addrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
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
