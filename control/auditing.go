package control

import (
	"context"
	"net/http"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/store"
)

// SetAudit makes every mutating policy API call (apply, delete, rollback;
// not dry runs) append to r. Call before RegisterRoutes.
func (p *Plane) SetAudit(r audit.Recorder) { p.audit = r }

// auditChange records a policy change (or its refusal). A failed audit
// write is logged: the change itself is in the store's durable history.
func (a *api) auditChange(r *http.Request, action string, res store.Result, err error, detail map[string]string) {
	if a.audit == nil || res.DryRun {
		return
	}
	if err == nil && !res.Changed {
		return // nothing changed: nothing to audit
	}
	e := audit.Entry{Action: action, Version: res.Version, Detail: detail}
	if _, ok := identityWho(r.Context()); !ok {
		e.Who = who(r) // without auth: the name the history records too
	}
	if err != nil {
		e.Outcome = err.Error()
		e.Version = 0
	}
	e.Targets, e.Diff = store.ChangeText(res.Changes)
	if t := detail["target"]; t != "" && len(e.Targets) == 0 {
		e.Targets = []string{t}
	}
	if aerr := a.audit.Record(r.Context(), e); aerr != nil {
		a.logger.Error("audit log append failed", "action", action, "version", res.Version, "err", aerr)
	}
}

// identityWho names an authenticated caller for the history; ok is false
// when the server runs without auth (then the X-Meshscope-Who header or
// the address names the caller).
func identityWho(ctx context.Context) (string, bool) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.Method == auth.MethodNone || id.Name == "" {
		return "", false
	}
	return id.Name, true
}
