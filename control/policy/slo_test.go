package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSLODefaults(t *testing.T) {
	docs, err := Load([]byte("kind: SLO\nname: pay\nservice: payments\nobjective: 99.9\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := docs[0].SLO()
	if s == nil {
		t.Fatal("no SLO spec")
	}
	if s.Window != DefaultSLOWindow || s.Indicator.Type != IndicatorAvailability || !s.Alerting.PageEnabled() || !s.Alerting.TicketEnabled() {
		t.Errorf("defaults not filled: %+v", s)
	}
	// JSON round trip (the store's format) keeps the spec.
	b, err := json.Marshal(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	var back Document
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !Equal(&docs[0], &back) || back.SLO().Window.D() != 30*24*time.Hour {
		t.Errorf("round trip changed the document: %s", b)
	}
	if !strings.Contains(string(b), `"window":"30d"`) {
		t.Errorf("window not written as a Prometheus duration: %s", b)
	}
}

func TestSLOErrors(t *testing.T) {
	const head = "kind: SLO\nname: pay\nservice: payments\n"
	for _, tc := range []struct{ doc, want string }{
		{"", "objective: 0: want a percent above 0 and below 100"},
		{"objective: 100\n", "objective: 100: want a percent"},
		{"objective: 99\nwindow: 30m\n", "window: 30m: must be at least 1h"},
		{"objective: 99\nwindow: soon\n", `"soon" is not a window`},
		{"objective: 99\nroute: api\n", `route: "api": want a declared route template`},
		{"objective: 99\nindicator:\n  type: speed\n", `indicator.type: "speed": want availability, latency or custom`},
		{"objective: 99\nindicator:\n  type: latency\n", "indicator.threshold: must be set"},
		{"objective: 99\nindicator:\n  type: latency\n  threshold: 300ms\n", "indicator.threshold: 300ms is not a bucket bound"},
		{"objective: 99\nindicator:\n  threshold: 250ms\n", "indicator: availability takes no threshold"},
		{"objective: 99\nindicator:\n  type: custom\n  good_query: up\n  total_query: up\n", "indicator.good_query: must contain {{.window}}"},
		{"objective: 99\nindicator:\n  type: custom\n  good_query: rate(x[{{.window}}])\n", "indicator.total_query: must be set"},
		{"objective: 99\nalerting:\n  labels:\n    severity: low\n", "alerting.labels.severity: is set by the generated rules"},
		{"objective: 99\nalerting:\n  labels:\n    bad-name: x\n", "alerting.labels.bad-name: is not a label name"},
		{"objective: 99\nalerting:\n  pager: true\n", "alerting.pager: unknown field"},
		{"objective: 99\nthreshold: 1s\n", "threshold: unknown field"},
	} {
		_, err := Load([]byte(head + tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.doc, err, tc.want)
		}
	}
}

func TestSLOLatencyBuckets(t *testing.T) {
	for _, th := range []string{"100us", "250ms", "1s", "2.5s", "30s"} {
		if _, err := Load([]byte("kind: SLO\nname: l\nservice: s\nobjective: 99\nindicator:\n  type: latency\n  threshold: " + th + "\n")); err != nil {
			t.Errorf("threshold %s: %v", th, err)
		}
	}
}
