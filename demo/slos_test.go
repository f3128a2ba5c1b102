package demo

import (
	"testing"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/slo"
)

// TestDemoSLOs: the demo's SLOs load, cover every service of the shop,
// and only payments' availability objective is below what the shop does,
// by more than its page alert's fastest factor (so it pages).
func TestDemoSLOs(t *testing.T) {
	docs, err := policy.Load(slosYAML)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, d := range docs {
		covered[d.Service] = true
		s := d.SLO()
		if s == nil || s.Indicator.Type != policy.IndicatorAvailability {
			continue
		}
		var errRate float64
		for _, spec := range Shop() {
			if spec.Name == d.Service {
				errRate = max(errRate, spec.Behavior.ErrorRate)
			}
		}
		pages := errRate > slo.Windows(s.Window.D(), 15e9)[0].Factor*slo.Budget(s.Objective)
		if want := d.Name == "payments-availability"; pages != want {
			t.Errorf("%s: injected error rate %v pages = %v, want %v", d.Name, errRate, pages, want)
		}
	}
	for _, spec := range Shop() {
		if !covered[spec.Name] {
			t.Errorf("service %s has no SLO", spec.Name)
		}
	}
}
