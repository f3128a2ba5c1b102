package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/registry"
	"github.com/meshscope/meshscope/control/store"
)

// APIPrefix starts every policy API path.
const APIPrefix = "/api/mesh/v1"

// HeaderWho names who makes a change; it is recorded in the history.
const HeaderWho = auth.HeaderWho

// maxApplyBody caps an apply request.
const maxApplyBody = 32 << 20

// ChangeView is one change in an API answer.
type ChangeView struct {
	Op      string `json:"op"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Service string `json:"service"`
	Source  string `json:"source,omitempty"`
	// Diff is the change as YAML lines prefixed "+ ", "- " or "  " (on
	// dry runs, deletes and rollbacks, and with ?diff=1).
	Diff string `json:"diff,omitempty"`
}

// ResultView answers apply, delete and rollback.
type ResultView struct {
	Version uint64       `json:"version"`
	Changed bool         `json:"changed"`
	DryRun  bool         `json:"dry_run"`
	Changes []ChangeView `json:"changes"`
}

// PoliciesView answers GET /policies.
type PoliciesView struct {
	Version  uint64            `json:"version"`
	Policies []policy.Document `json:"policies"`
	// Sources maps "Kind/name" to what owns the document: "api" or
	// "file:<path below --policies>".
	Sources map[string]string `json:"sources"`
}

// PolicyView answers GET /policies/{kind}/{name}.
type PolicyView struct {
	Version uint64          `json:"version"`
	Source  string          `json:"source"`
	Policy  policy.Document `json:"policy"`
}

// EntryView is one history entry.
type EntryView struct {
	store.Entry
	Changes []ChangeView `json:"changes"`
}

// HistoryView answers GET /history.
type HistoryView struct {
	Version uint64      `json:"version"`
	Entries []EntryView `json:"entries"`
}

// EndpointsView answers GET /endpoints.
type EndpointsView = registry.View

// ErrorView is the body of every error answer.
type ErrorView struct {
	Error string `json:"error"`
}

// StatusView answers GET /status.
type StatusView struct {
	// Version is the policy version this server serves.
	Version uint64 `json:"version"`
	// StateStore is embedded or etcd.
	StateStore string `json:"state_store"`
	// ID names this server; Leader says whether it leads the controllers
	// and LeaderID who does.
	ID       string `json:"id"`
	Leader   bool   `json:"leader"`
	LeaderID string `json:"leader_id"`
	// Error says why the leader could not be asked.
	Error string `json:"error,omitempty"`
}

type api struct {
	store    *store.Store
	registry *registry.Registry
	logger   *slog.Logger
	audit    audit.Recorder // nil = no audit log
	status   func(context.Context) StatusView
}

type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

func (a *api) register(mux *http.ServeMux) {
	mux.Handle("POST "+APIPrefix+"/apply", a.handle(a.apply))
	mux.Handle("GET "+APIPrefix+"/policies", a.handle(a.list))
	mux.Handle("GET "+APIPrefix+"/policies/{kind}/{name}", a.handle(a.get))
	mux.Handle("DELETE "+APIPrefix+"/policies/{kind}/{name}", a.handle(a.delete))
	mux.Handle("GET "+APIPrefix+"/endpoints", a.handle(a.endpoints))
	mux.Handle("GET "+APIPrefix+"/history", a.handle(a.history))
	mux.Handle("GET "+APIPrefix+"/status", a.handle(func(r *http.Request) (any, error) { return a.status(r.Context()), nil }))
	mux.Handle("POST "+APIPrefix+"/rollback", a.handle(a.rollback))
}

func (a *api) handle(f func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			code := http.StatusInternalServerError
			var (
				he *httpError
				ve *store.ValidationError
				ce *store.ConflictError
				ne *store.NotFoundError
				me *http.MaxBytesError
			)
			switch {
			case errors.As(err, &he):
				code = he.code
			case errors.As(err, &ve):
				code = http.StatusBadRequest
			case errors.As(err, &ce):
				code = http.StatusConflict
			case errors.As(err, &ne):
				code = http.StatusNotFound
			case errors.As(err, &me):
				code = http.StatusRequestEntityTooLarge
			}
			if code == http.StatusInternalServerError {
				a.logger.Error("policy API", "path", r.URL.Path, "err", err)
			}
			writeJSON(w, code, ErrorView{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"encoding response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// who names the caller (see auth.Who).
func who(r *http.Request) string { return auth.Who(r) }

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s=%q: want true or false (1 or 0)", name, v)
	}
	return b, nil
}

func changeViews(changes []store.Change, withDiff bool) []ChangeView {
	out := make([]ChangeView, 0, len(changes))
	for _, c := range changes {
		v := ChangeView{Op: c.Op, Kind: c.Kind, Name: c.Name, Service: c.Service, Source: c.Source}
		if withDiff && c.Op != store.OpUnchanged {
			v.Diff = store.Diff(c)
		}
		out = append(out, v)
	}
	return out
}

func resultView(res store.Result, withDiff bool) ResultView {
	return ResultView{Version: res.Version, Changed: res.Changed, DryRun: res.DryRun, Changes: changeViews(res.Changes, withDiff)}
}

func (a *api) apply(r *http.Request) (any, error) {
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		return nil, err
	}
	diff, err := boolParam(r, "diff")
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxApplyBody))
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	docs, err := policy.Load(body)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if len(docs) == 0 {
		return nil, badRequest("no policy documents in the request")
	}
	res, err := a.store.Apply(docs, store.ApplyOptions{Who: who(r), DryRun: dry})
	if !dry {
		a.auditChange(r, store.ActionApply, res, err, nil)
	}
	if err != nil {
		return nil, err
	}
	return resultView(res, dry || diff), nil
}

// kindParam resolves a kind in any case; "" stays "".
func kindParam(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	k, ok := policy.LookupKind(s)
	if !ok {
		return "", badRequest("kind %q: unknown (want one of %v)", s, policy.KindNames())
	}
	return k.Name, nil
}

func (a *api) list(r *http.Request) (any, error) {
	kind, err := kindParam(r.URL.Query().Get("kind"))
	if err != nil {
		return nil, err
	}
	version, items := a.store.List(kind, r.URL.Query().Get("service"))
	v := PoliciesView{Version: version, Policies: make([]policy.Document, 0, len(items)), Sources: map[string]string{}}
	for _, it := range items {
		v.Policies = append(v.Policies, it.Document)
		v.Sources[it.Key().String()] = it.Source
	}
	return v, nil
}

func (a *api) key(r *http.Request) (policy.Key, error) {
	kind, err := kindParam(r.PathValue("kind"))
	if err != nil {
		return policy.Key{}, err
	}
	return policy.Key{Kind: kind, Name: r.PathValue("name")}, nil
}

func (a *api) get(r *http.Request) (any, error) {
	k, err := a.key(r)
	if err != nil {
		return nil, err
	}
	it, ok := a.store.Get(k)
	if !ok {
		return nil, &store.NotFoundError{What: k.String()}
	}
	return PolicyView{Version: a.store.Version(), Source: it.Source, Policy: it.Document}, nil
}

func (a *api) delete(r *http.Request) (any, error) {
	k, err := a.key(r)
	if err != nil {
		return nil, err
	}
	res, err := a.store.Delete(k, store.ApplyOptions{Who: who(r)})
	a.auditChange(r, store.ActionDelete, res, err, map[string]string{"target": k.String()})
	if err != nil {
		return nil, err
	}
	return resultView(res, true), nil
}

func (a *api) endpoints(r *http.Request) (any, error) {
	return a.registry.View(r.URL.Query().Get("service")), nil
}

func uintParam(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("%s=%q: want a non-negative integer", name, v)
	}
	return n, nil
}

func (a *api) history(r *http.Request) (any, error) {
	since, err := uintParam(r, "since")
	if err != nil {
		return nil, err
	}
	limit, err := uintParam(r, "limit")
	if err != nil {
		return nil, err
	}
	diff, err := boolParam(r, "diff")
	if err != nil {
		return nil, err
	}
	entries := a.store.History(since, int(min(limit, 1<<31)))
	v := HistoryView{Version: a.store.Version(), Entries: make([]EntryView, 0, len(entries))}
	for _, e := range entries {
		ev := EntryView{Entry: e, Changes: changeViews(e.Changes, diff)}
		ev.Entry.Changes = nil
		v.Entries = append(v.Entries, ev)
	}
	return v, nil
}

func (a *api) rollback(r *http.Request) (any, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return nil, badRequest("version: must be set (?version=N)")
	}
	n, err := uintParam(r, "version")
	if err != nil {
		return nil, err
	}
	res, err := a.store.Rollback(n, store.ApplyOptions{Who: who(r)})
	a.auditChange(r, store.ActionRollback, res, err, map[string]string{"rollback_to": v})
	if err != nil {
		return nil, err
	}
	return resultView(res, true), nil
}
