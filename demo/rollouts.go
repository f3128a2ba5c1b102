package demo

import (
	"fmt"
	"time"
)

// Scenarios of Config.Scenario.
const (
	// ScenarioNone runs the shop as it is.
	ScenarioNone = ""
	// ScenarioCanary rolls inventory v2 (as healthy as v1) out: it is
	// promoted within a few minutes.
	ScenarioCanary = "canary"
	// ScenarioBadCanary rolls out an inventory v2 that fails 5 % of its
	// requests: above the rollout's 90 % success-rate threshold, but the
	// comparison with v1 rolls it back.
	ScenarioBadCanary = "bad-canary"
)

// rolloutYAML is the Rollout the scenarios start (docs/rollouts.md).
const rolloutYAML = `kind: Rollout
name: inventory-v2
service: inventory
stable: v1
canary: v2
steps: [20, 50, 80, 100]
interval: 30s
min_requests: 30
analysis:
  success_rate: {min: 90}
  latency: {p99_max: 500ms}
`

func validScenario(s string) error {
	switch s {
	case ScenarioNone, ScenarioCanary, ScenarioBadCanary:
		return nil
	}
	return fmt.Errorf("scenario %q: want %s or %s", s, ScenarioCanary, ScenarioBadCanary)
}

// withScenario returns the shop with inventory v2 behaving as the
// scenario needs: like v1 (canary) or like v1 but failing 5 % of its
// requests (bad-canary).
func withScenario(shop []ServiceSpec, scenario string) []ServiceSpec {
	if scenario == ScenarioNone {
		return shop
	}
	for i := range shop {
		if shop[i].Name == "inventory" && shop[i].Version == "v2" {
			shop[i].Behavior = Behavior{BaseLatency: 3 * time.Millisecond}
			if scenario == ScenarioBadCanary {
				shop[i].Behavior.ErrorRate = 0.05
			}
		}
	}
	return shop
}
