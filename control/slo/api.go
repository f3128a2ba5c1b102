package slo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/meshscope/meshscope/control/policy"
)

// APIPrefix starts the SLO API paths.
const APIPrefix = "/api/mesh/v1/slos"

// ListView answers GET /api/mesh/v1/slos.
type ListView struct {
	// Version is the policy version the SLOs come from.
	Version uint64   `json:"version"`
	SLOs    []Status `json:"slos"`
}

// RegisterRoutes adds the SLO API to mux.
func (m *Manager) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+APIPrefix, m.list)
	mux.HandleFunc("GET "+APIPrefix+"/{name}", m.get)
	mux.HandleFunc("GET "+APIPrefix+"/{name}/rules", m.rules)
}

type errorView struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func (m *Manager) list(w http.ResponseWriter, r *http.Request) {
	docs := m.documents()
	snap, err := m.readSnapshot(r.Context(), docs, "")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorView{err.Error()})
		return
	}
	m.mu.RLock()
	v := ListView{Version: m.version, SLOs: make([]Status, 0, len(docs))}
	errs := m.errs
	m.mu.RUnlock()
	service := r.URL.Query().Get("service")
	for _, d := range docs {
		if service != "" && d.Service != service {
			continue
		}
		v.SLOs = append(v.SLOs, m.status(r.Context(), d, errs[d.Name], snap))
	}
	writeJSON(w, http.StatusOK, v)
}

func (m *Manager) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	d, genErr, ok := m.document(name)
	if !ok {
		writeJSON(w, http.StatusNotFound, errorView{"slo " + name + " not found"})
		return
	}
	snap, err := m.readSnapshot(r.Context(), []policy.Document{d}, name)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorView{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, m.status(r.Context(), d, genErr, snap))
}

// RulesView answers GET /api/mesh/v1/slos/{name}/rules?format=json.
type RulesView struct {
	Name string `json:"name"`
	// Rules is the Prometheus rule file (YAML).
	Rules string `json:"rules"`
}

// rules answers the SLO's generated rule file as YAML (as JSON with
// ?format=json).
func (m *Manager) rules(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	d, _, ok := m.document(name)
	if !ok {
		writeJSON(w, http.StatusNotFound, errorView{"slo " + name + " not found"})
		return
	}
	gs, err := Rules(&d, m.opts)
	var b []byte
	if err == nil {
		b, err = RuleFile(gs)
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, errorView{err.Error()})
		return
	}
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusOK, RulesView{Name: name, Rules: string(b)})
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(b)
}

// RemainingBudget returns the named SLO's remaining error budget in percent
// over its window (nil without traffic): the figure the SLO API shows, for
// the rollout controller's budget gate.
func (m *Manager) RemainingBudget(ctx context.Context, name string) (*float64, error) {
	d, genErr, ok := m.document(name)
	if !ok {
		return nil, fmt.Errorf("slo %s not found", name)
	}
	snap, err := m.readSnapshot(ctx, []policy.Document{d}, name)
	if err != nil {
		return nil, err
	}
	st := m.status(ctx, d, genErr, snap)
	if st.State == StateError {
		return nil, fmt.Errorf("slo %s: %s", name, st.Error)
	}
	return st.ErrorBudget.RemainingPercent, nil
}
