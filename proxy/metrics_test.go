package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSeriesCacheFollowsTheLabels alternates label sets through one
// connection's series cache and checks that every request is counted in
// its own series.
func TestSeriesCacheFollowsTheLabels(t *testing.T) {
	m, err := newGoldenMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ok := requestKey{protocol: protoHTTP1, route: "/a", statusCode: "200", outcome: outcomeSuccess}
	fail := ok
	fail.statusCode, fail.outcome = "503", outcomeFailure
	var c seriesCache
	for _, k := range []requestKey{ok, ok, fail, ok, fail, fail, fail} {
		c.get(m, &k).requests.Inc()
	}
	for k, want := range map[requestKey]float64{ok: 3, fail: 4} {
		if got := testutil.ToFloat64(m.request(&k).requests); got != want {
			t.Errorf("status %s counted %v times, want %v", k.statusCode, got, want)
		}
	}
}
