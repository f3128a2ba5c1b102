package red_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/red"
)

func TestMatchersAndRange(t *testing.T) {
	if got := red.Matchers(map[string]string{"b": `x"y`, "a": "1"}); got != `a="1",b="x\"y"` {
		t.Errorf("Matchers = %s", got)
	}
	for d, want := range map[time.Duration]string{time.Minute: "1m", 90 * time.Second: "1m30s", 1500 * time.Millisecond: "1s500ms"} {
		if got := red.Range(d); got != want {
			t.Errorf("Range(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestModes(t *testing.T) {
	ps := []red.Proxy{{"a", "v1", "observe"}, {"a", "v2", "enforce"}, {"b", "v1", "enforce"}}
	got := red.Modes(ps, func(p red.Proxy) string { return p.Service })
	if got["a"] != "mixed" || got["b"] != "enforce" || len(got) != 2 {
		t.Errorf("Modes = %v", got)
	}
}

func TestTablePrefersInbound(t *testing.T) {
	src := red.Source{Engine: fixture.Engine(), Queryable: fixture.TSDB(t)}
	rows, err := src.Table(context.Background(), []string{"source_service", "destination_service"}, nil, 5*time.Minute, fixture.Now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"catalog→inventory": "outbound", "web→catalog": "inbound", "unknown→web": "inbound", "checkout→payments": "inbound", "web→checkout": "inbound"}
	for _, r := range rows {
		k := r.Labels["source_service"] + "→" + r.Labels["destination_service"]
		if want[k] != r.Direction {
			t.Errorf("%s: direction %q, want %q", k, r.Direction, want[k])
		}
		if math.IsNaN(r.P99) || r.P99 < r.P50 {
			t.Errorf("%s: p50 %v p99 %v", k, r.P50, r.P99)
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Errorf("missing rows %v", want)
	}
	if _, err := src.Table(context.Background(), []string{"route"}, nil, 0, fixture.Now); err == nil {
		t.Error("zero window accepted")
	}
	if _, err := src.Dependencies(context.Background(), fixture.Now, 0); err == nil {
		t.Error("zero lookback accepted")
	}
	if _, err := src.Proxies(context.Background(), -time.Second, fixture.Now); err == nil {
		t.Error("negative proxy window accepted")
	}
}
