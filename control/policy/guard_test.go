package policy

import (
	"strings"
	"testing"
)

func TestGuardLoad(t *testing.T) {
	const base = "kind: Guard\nname: g\nservice: inventory\n"
	tests := []struct {
		name, in, wantErr string
	}{
		{"shift to", base + "when: {slo: inv}\nthen: {shift: {to: v1}}\n", ""},
		{"weights", base + "when: {slo: inv, burn: ticket}\nthen: {shift: {weights: {v1: 90, v2: 10}}}\n", ""},
		{"alert", base + "when: {alert: HighErrors, labels: {team: a}}\nthen: {break: {}}\nmode: enforce\n", ""},
		{"observe is not a guard mode", base + "mode: observe\nwhen: {slo: inv}\nthen: {break: {}}\n", `mode: "observe": want dry-run or enforce`},
		{"dry-run is not a route mode", "kind: Route\nname: r\nservice: s\nmode: dry-run\ntimeout: 1s\n", `mode: "dry-run": want observe or enforce`},
		{"unknown key", base + "when: {slo: inv}\nthen: {shift: {to: v1, drain: true}}\n", "then.shift.drain: unknown field (known: to, weights)"},
		{"no condition", base + "then: {break: {}}\n", "when: want slo or alert"},
		{"both conditions", base + "when: {slo: a, alert: B}\nthen: {break: {}}\n", "when: want slo or alert, not both"},
		{"bad burn", base + "when: {slo: a, burn: fast}\nthen: {break: {}}\n", `when.burn: "fast": want page or ticket`},
		{"no action", base + "when: {slo: a}\n", "then: want at least one of shift, break, shed, eject"},
		{"weights sum", base + "when: {slo: a}\nthen: {shift: {weights: {v1: 50, v2: 10}}}\n", "then.shift.weights: sum to 60, want 100"},
		{"shift and eject", base + "when: {slo: a}\nthen: {shift: {to: v1}, eject: {version: v2}}\n", "then: shift and eject"},
		{"shed both", base + "when: {slo: a}\nthen: {shed: {percent: 10, requests_per_second: 5}}\n", "then.shed: want requests_per_second or percent, not both"},
		{"shed percent", base + "when: {slo: a}\nthen: {shed: {percent: 120}}\n", "then.shed.percent: must be above 0 and at most 100"},
		{"probe", base + "when: {slo: a}\nthen: {break: {probe_percent: -1}}\n", "then.break.probe_percent: must be 0..100"},
		{"revert", base + "when: {slo: a}\nthen: {break: {}}\nrevert: later\n", `revert: "later": want auto or manual`},
		{"cooldown", base + "when: {slo: a}\nthen: {break: {}}\ncooldown: soon\n", "cooldown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Load([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, docs)
		})
	}
}

func TestGuardDefaults(t *testing.T) {
	docs, err := Load([]byte("kind: Guard\nname: g\nservice: s\nwhen: {slo: s-avail}\nthen: {break: {}, shed: {percent: 20}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := docs[0]
	g := d.Guard()
	if d.Mode != ModeDryRun || g.When.Burn != "page" || g.Then.Break.ProbePercent != 5 || g.Cooldown.D().Minutes() != 5 ||
		g.Revert != RevertAuto || g.RevertAfter.D().Minutes() != 5 || g.Limits.MaxShedPercent != 50 {
		t.Errorf("defaults: mode %q %+v break %+v", d.Mode, g, g.Then.Break)
	}
}
