package guard

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
)

// TestGuardAudit: an operator's promote and revert name the operator in
// the audit log, the controller's action names controller:guard, each
// with the policy diff and the version it wrote; dry-run decisions are
// not audited.
func TestGuardAudit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, strings.Replace(fixtureDocs, "%s", "dry-run", 1))
	cfg := audit.DefaultConfig()
	cfg.Dir = filepath.Join(f.dir, "audit")
	log, err := audit.Open(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	f.c.SetAudit(log)
	alice := auth.WithIdentity(ctx, auth.Identity{Name: "alice", Role: auth.RoleOperator, Method: "session", Addr: "10.0.0.9"})

	f.alerts.set(t, "inv-avail", true)
	f.c.Evaluate(ctx) // would-act: not audited
	if _, err := f.c.Operate(alice, "g", OpPromote, "alice"); err != nil {
		t.Fatal(err)
	}
	f.c.Evaluate(ctx) // acted
	if _, err := f.c.Operate(alice, "g", OpRevert, "alice"); err != nil {
		t.Fatal(err)
	}
	page, err := log.Query(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ action, who, auth, by string }
	var got []row
	for i := len(page.Entries) - 1; i >= 0; i-- {
		e := page.Entries[i]
		got = append(got, row{e.Action, e.Who, e.Auth, e.Detail["by"]})
	}
	want := []row{{"guard.promoted", "alice", "session", ""}, {"guard.acted", ControllerWho, "controller", "guard"}, {"guard.reverted", "alice", "session", ""}}
	if len(got) != len(want) {
		t.Fatalf("audit entries %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	prom, acted, rev := page.Entries[2], page.Entries[1], page.Entries[0]
	if prom.Version == 0 || strings.Join(prom.Targets, ",") != "Guard/g" || !strings.Contains(prom.Diff, "- mode: dry-run") || !strings.Contains(prom.Diff, "+ mode: enforce") {
		t.Errorf("promote: version %d diff\n%s", prom.Version, prom.Diff)
	}
	if acted.Version <= prom.Version || strings.Join(acted.Targets, ",") != "Guard/g,Route/split" || !strings.Contains(acted.Diff, "# update Route/split") {
		t.Errorf("acted: version %d targets %v diff\n%s", acted.Version, acted.Targets, acted.Diff)
	}
	if acted.Detail["alert"] == "" || acted.Detail["mode"] != "enforce" {
		t.Errorf("acted detail %v", acted.Detail)
	}
	if rev.Version <= acted.Version || rev.Role != "operator" || rev.From != "10.0.0.9" || !strings.Contains(rev.Diff, "weight: 50") {
		t.Errorf("revert: version %d role %q from %q diff\n%s", rev.Version, rev.Role, rev.From, rev.Diff)
	}
}
