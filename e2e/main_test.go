//go:build unix

package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The binaries under test, built once per package run.
var (
	binDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run() // every test skips itself
	}
	if dir := os.Getenv("MESHSCOPE_E2E_BIN"); dir != "" {
		binDir, buildErr = filepath.Abs(dir)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "meshscope-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	buildErr = buildBinaries(dir)
	return m.Run()
}

func buildBinaries(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	start := time.Now()
	cmd := exec.Command(goCmd, "build", "-o", dir+string(filepath.Separator), "./cmd/meshscope", "./cmd/meshscope-proxy")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/meshscope ./cmd/meshscope-proxy: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built binaries in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// binaries returns the paths of meshscope and meshscope-proxy, skipping in
// -short mode and failing the test if they could not be built.
func binaries(t *testing.T) (server, proxy string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	if buildErr != nil {
		t.Fatalf("building the binaries: %v", buildErr)
	}
	server, proxy = filepath.Join(binDir, "meshscope"), filepath.Join(binDir, "meshscope-proxy")
	for _, b := range []string{server, proxy} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("binary missing: %v", err)
		}
	}
	return server, proxy
}
