package proxy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryDependencies keeps storage, PromQL and collector code out of the
// sidecar binary.
func TestBinaryDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/meshscope/meshscope/cmd/meshscope-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/prometheus/prometheus/",
		"github.com/meshscope/meshscope/collector",
		"github.com/meshscope/meshscope/topology",
		"github.com/meshscope/meshscope/query",
		"github.com/ClickHouse/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg+"/", f) {
				t.Errorf("meshscope-proxy depends on %s", pkg)
			}
		}
	}
}
