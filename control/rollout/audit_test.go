package rollout

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
)

// TestRolloutAudit: the controller's start and advance name
// controller:rollout, an operator's pause and abort name the operator,
// and every weight change carries the route diff and the version written.
func TestRolloutAudit(t *testing.T) {
	e := newEnv(t, Options{})
	cfg := audit.DefaultConfig()
	cfg.Dir = e.dir + "/audit"
	log, err := audit.Open(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	e.c.SetAudit(log)
	bob := auth.WithIdentity(context.Background(), auth.Identity{Name: "bob", Role: auth.RoleOperator, Method: "token", Addr: "10.0.0.7"})

	e.apply(doc)
	e.samp.set(healthy, baseline)
	if s := e.interval(); s.Weight != 50 {
		t.Fatalf("did not advance: %d", s.Weight)
	}
	if _, err := e.c.Act(bob, "inv", ActionPause, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Act(bob, "inv", ActionAbort, "bob"); err != nil {
		t.Fatal(err)
	}
	page, err := log.Query(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(page.Entries) - 1; i >= 0; i-- {
		en := page.Entries[i]
		got = append(got, en.Action+" "+en.Who+" "+en.Auth)
	}
	want := "rollout.started controller:rollout controller,rollout.advanced controller:rollout controller,rollout.paused bob token,rollout.aborted bob token"
	if strings.Join(got, ",") != want {
		t.Fatalf("audit entries\n%s\nwant\n%s", strings.Join(got, ","), want)
	}
	started, adv, paused, aborted := page.Entries[3], page.Entries[2], page.Entries[1], page.Entries[0]
	if started.Version == 0 || !strings.Contains(started.Diff, "weight: 10") {
		t.Errorf("started: version %d diff\n%s", started.Version, started.Diff)
	}
	if adv.Version == 0 || !strings.Contains(adv.Diff, "weight: 50") || strings.Join(adv.Targets, ",") != "Rollout/inv,Route/inv" {
		t.Errorf("advanced: version %d targets %v diff\n%s", adv.Version, adv.Targets, adv.Diff)
	}
	if paused.Version != 0 || paused.Diff != "" {
		t.Errorf("pause changed no route but has version %d diff %q", paused.Version, paused.Diff)
	}
	if aborted.Version <= adv.Version || !strings.Contains(aborted.Diff, "+         weight: 100") || aborted.From != "10.0.0.7" {
		t.Errorf("aborted: version %d from %q diff\n%s", aborted.Version, aborted.From, aborted.Diff)
	}
}
