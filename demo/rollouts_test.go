package demo

import (
	"strings"
	"testing"

	"github.com/meshscope/meshscope/control/policy"
)

func TestScenarios(t *testing.T) {
	cases := []struct {
		scenario  string
		errorRate float64
		changed   bool
	}{
		{ScenarioNone, 0, false},
		{ScenarioCanary, 0, true},
		{ScenarioBadCanary, 0.05, true},
	}
	orig := inventoryV2(Shop())
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			if err := (Config{Scenario: c.scenario}).Validate(); err != nil {
				t.Fatal(err)
			}
			b := inventoryV2(withScenario(Shop(), c.scenario))
			if !c.changed {
				if b != orig {
					t.Errorf("no scenario changed v2: %+v", b)
				}
				return
			}
			v1 := Shop()[0].Behavior
			for _, s := range Shop() {
				if s.Name == "inventory" && s.Version == "v1" {
					v1 = s.Behavior
				}
			}
			if b.ErrorRate != c.errorRate || b.BaseLatency != v1.BaseLatency || b.SlowRate != 0 {
				t.Errorf("v2 behaviour %+v, want v1's latency and error rate %v", b, c.errorRate)
			}
		})
	}
	if err := (Config{Scenario: "worse"}).Validate(); err == nil || !strings.Contains(err.Error(), "scenario \"worse\"") {
		t.Errorf("unknown scenario: %v", err)
	}
	docs, err := policy.Load([]byte(rolloutYAML))
	if err != nil || len(docs) != 1 || docs[0].Rollout() == nil || docs[0].Service != "inventory" {
		t.Fatalf("rollout document: %v", err)
	}
}

func inventoryV2(shop []ServiceSpec) Behavior {
	for _, s := range shop {
		if s.Name == "inventory" && s.Version == "v2" {
			return s.Behavior
		}
	}
	return Behavior{}
}
