package red_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/red"
)

func TestRange(t *testing.T) {
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

// The dependencies are the RED engine's service edges: inbound numbers of
// meshed callees, outbound ones of unmeshed callees, whole calls.
func TestDependencies(t *testing.T) {
	db := fixture.TSDB(t)
	deps, err := red.Dependencies{RED: fixture.RED(t, db)}.Dependencies(context.Background(), fixture.Now, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	for _, e := range fixture.Edges {
		want[e.Src+"→"+e.Dst] += e.RPS * 300
	}
	for _, d := range deps {
		k := d.Parent + "→" + d.Child
		if w, ok := want[k]; !ok || math.Abs(float64(d.CallCount)-w) > 1 {
			t.Errorf("%s: %d calls, want %v", k, d.CallCount, w)
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Errorf("missing dependencies %v", want)
	}
	if _, err := (red.Dependencies{RED: fixture.RED(t, db)}).Dependencies(context.Background(), fixture.Now, 0); err == nil {
		t.Error("zero lookback accepted")
	}
	src := red.Source{Engine: fixture.Engine(), Queryable: db}
	if _, err := src.Proxies(context.Background(), -time.Second, fixture.Now); err == nil {
		t.Error("negative proxy window accepted")
	}
}
