package demo

import (
	"testing"
	"time"

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

// TestDemoGuards: the demo's guards load and name the demo's SLOs; the
// inventory guard enforces and the payments guard is a dry run; and
// inventory pages only once v2 fails: v2's share of inventory's route
// (policies.yaml) times its later error rate exceeds the page factor
// times the budget, its error rate before does not.
func TestDemoGuards(t *testing.T) {
	guards, err := policy.Load(guardsYAML)
	if err != nil {
		t.Fatal(err)
	}
	slos, err := policy.Load(slosYAML)
	if err != nil {
		t.Fatal(err)
	}
	sloByName := map[string]*policy.Document{}
	for i := range slos {
		sloByName[slos[i].Name] = &slos[i]
	}
	modes := map[string]policy.Mode{}
	for _, g := range guards {
		if g.Guard() == nil {
			t.Fatalf("%s is not a Guard", g.Ref())
		}
		s := sloByName[g.Guard().When.SLO]
		if s == nil || s.Service != g.Service {
			t.Errorf("guard %s: SLO %q is not an SLO of %s in slos.yaml", g.Name, g.Guard().When.SLO, g.Service)
		}
		modes[g.Name] = g.Mode
	}
	if modes["inventory-fallback"] != policy.ModeEnforce || modes["payments-shed"] != policy.ModeDryRun {
		t.Errorf("modes %v: want inventory-fallback enforce, payments-shed dry-run", modes)
	}
	pols, err := policy.Load(policiesYAML)
	if err != nil {
		t.Fatal(err)
	}
	var v2Share float64
	for _, d := range pols {
		if d.Name == "inventory-split" {
			for _, b := range d.Route().Rules[0].Backends {
				if b.Version == "v2" {
					v2Share = float64(b.Weight) / 100
				}
			}
		}
	}
	inv := sloByName["inventory-availability"].SLO()
	threshold := slo.Windows(inv.Window.D(), 15e9)[0].Factor * slo.Budget(inv.Objective)
	for _, spec := range Shop() {
		if spec.ID() != "inventory-v2" {
			continue
		}
		before, after := spec.Behavior.At(0).ErrorRate*v2Share, spec.Behavior.At(InventoryV2FailsAfter).ErrorRate*v2Share
		if before > threshold || after < 2*threshold {
			t.Errorf("inventory error ratio %v before and %v after v2 fails; want below and well above the page threshold %v", before, after, threshold)
		}
	}
	// The page alert's long window is short enough to fire within a few minutes.
	if w := slo.Windows(inv.Window.D(), 15e9)[0]; w.Long > 3*time.Minute {
		t.Errorf("inventory-availability page window %v: too long for the demo", w.Long)
	}
}
