package store

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/policy"
)

// BenchmarkApply1000Services applies 1,000 services' Route and Resilience
// documents (loading, validating, logging with fsync, diffs) to an empty
// store.
func BenchmarkApply1000Services(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "---\nkind: Route\nname: s%d-route\nservice: s%d\ntimeout: 2s\nretries: {attempts: 2}\nrules:\n- backends: [{version: v1, weight: 90}, {version: v2, weight: 10}]\n", i, i)
		fmt.Fprintf(&sb, "---\nkind: Resilience\nname: s%d-res\nservice: s%d\noutlier_detection: {}\nrate_limit: {requests_per_second: 100}\n", i, i)
	}
	body := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		docs, err := policy.Load(body)
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(b.TempDir(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Apply(docs, ApplyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range res.Changes {
			_ = Diff(c)
		}
		s.Close()
	}
}
