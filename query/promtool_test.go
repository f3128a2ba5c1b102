package query_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/query/internal/fixture"
)

// TestPromtool runs the real `promtool query` client (Debian package
// `prometheus`, installed by `make test`'s set-up) against the API and
// checks its output.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); skipping the promtool compatibility test")
	}
	srv := newServer(t, nil)
	now := fixture.Now.Format(time.RFC3339)
	start := fixture.Now.Add(-2 * time.Minute).Format(time.RFC3339)
	tests := []struct {
		name string
		args []string
		want []string // substrings of stdout
	}{
		{"instant", []string{"query", "instant", "--time", now, srv.URL, `sum by (destination_service) (rate(mesh_requests_total{direction="inbound",destination_service="payments"}[1m]))`},
			[]string{`{destination_service="payments"} => 1`}},
		{"instant scalar", []string{"query", "instant", "--time", now, srv.URL, `1+1`}, []string{"scalar: 2"}},
		{"instant json", []string{"query", "instant", "-o", "json", "--time", now, srv.URL, `count(meshscope_proxy_info)`}, []string{`"value":[1767268800,"5"]`}},
		{"range", []string{"query", "range", "--start", start, "--end", now, "--step", "1m", srv.URL, `count(meshscope_proxy_info)`},
			[]string{"{} =>", "5 @[1767268680]", "5 @[1767268800]"}},
		{"series", []string{"query", "series", "--match", `meshscope_proxy_info{mode="enforce"}`, "--start", start, "--end", now, srv.URL},
			[]string{`{__name__="meshscope_proxy_info", mode="enforce", service="catalog", version="v2"}`, `service="payments"`}},
		{"labels", []string{"query", "labels", srv.URL, "destination_service"}, []string{"catalog", "checkout", "inventory", "payments", "web"}},
		{"labels match", []string{"query", "labels", "--match", `meshscope_proxy_info{mode="observe"}`, srv.URL, "service"}, []string{"catalog\ncheckout\nweb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, promtool, tc.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("promtool %s output lacks %q:\n%s", tc.args[1], w, out)
				}
			}
		})
	}
	t.Run("bad query fails", func(t *testing.T) {
		out, err := exec.Command(promtool, "query", "instant", srv.URL, "sum((").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bad_data") {
			t.Errorf("promtool accepted a bad query or lost the error type: %v\n%s", err, out)
		}
	})
}
