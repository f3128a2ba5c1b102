package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/store"
)

// APIPrefix starts the rollout API paths.
const APIPrefix = "/api/mesh/v1/rollouts"

// HeaderWho names who acts (as in the policy API).
const HeaderWho = auth.HeaderWho

// ListView answers GET /api/mesh/v1/rollouts.
type ListView struct {
	Rollouts []Summary `json:"rollouts"`
}

// Summary is a rollout in the list.
type Summary struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Stable  string `json:"stable"`
	Canary  string `json:"canary"`
	Phase   string `json:"phase"`
	Step    int    `json:"step"`
	Steps   []int  `json:"steps"`
	Weight  int    `json:"weight"`
	// Failures and FailureLimit: failed intervals so far and allowed.
	Failures     int    `json:"failures"`
	FailureLimit int    `json:"failure_limit"`
	Held         string `json:"held,omitempty"`
	// Last is the latest interval (nil before the first).
	Last    *Interval `json:"last,omitempty"`
	Started string    `json:"started"`
	Updated string    `json:"updated"`
}

func summarize(s State) Summary {
	v := Summary{Name: s.Name, Service: s.Service, Stable: s.Stable, Canary: s.Canary, Phase: s.Phase, Step: s.Step,
		Weight: s.Weight, Failures: s.Failures, FailureLimit: s.Spec.FailureLimit, Held: s.Held,
		Started: s.Started.UTC().Format("2006-01-02T15:04:05Z"), Updated: s.Updated.UTC().Format("2006-01-02T15:04:05Z")}
	for _, st := range s.Spec.Steps {
		v.Steps = append(v.Steps, st.Weight)
	}
	if n := len(s.Intervals); n > 0 {
		last := s.Intervals[n-1]
		v.Last = &last
	}
	return v
}

type errorView struct {
	Error string `json:"error"`
}

// RegisterRoutes adds the rollout API to mux.
func (c *Controller) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+APIPrefix, c.apiList)
	mux.HandleFunc("POST "+APIPrefix, c.apiStart)
	mux.HandleFunc("GET "+APIPrefix+"/{name}", c.apiGet)
	mux.HandleFunc("POST "+APIPrefix+"/{name}/{action}", c.apiAct)
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

func whoOf(r *http.Request) string { return auth.Who(r) }

func (c *Controller) apiList(w http.ResponseWriter, r *http.Request) {
	service := r.URL.Query().Get("service")
	v := ListView{Rollouts: []Summary{}}
	for _, s := range c.List() {
		if service == "" || s.Service == service {
			v.Rollouts = append(v.Rollouts, summarize(s))
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *Controller) apiGet(w http.ResponseWriter, r *http.Request) {
	s, ok := c.Get(r.PathValue("name"))
	if !ok {
		writeJSON(w, http.StatusNotFound, errorView{"rollout " + r.PathValue("name") + " not found"})
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// apiStart applies Rollout documents (YAML or JSON) through the policy
// store, as POST /api/mesh/v1/apply would, and answers their states.
func (c *Controller) apiStart(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorView{"reading the request: " + err.Error()})
		return
	}
	docs, err := policy.Load(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorView{err.Error()})
		return
	}
	if len(docs) == 0 {
		writeJSON(w, http.StatusBadRequest, errorView{"no Rollout document in the request"})
		return
	}
	for i := range docs {
		if docs[i].Kind != policy.KindRollout {
			writeJSON(w, http.StatusBadRequest, errorView{fmt.Sprintf("%s: this endpoint starts rollouts only (apply other kinds with POST /api/mesh/v1/apply)", docs[i].Ref())})
			return
		}
	}
	if _, err := c.store.Apply(docs, store.ApplyOptions{Who: whoOf(r)}); err != nil {
		code := http.StatusInternalServerError
		var (
			ve *store.ValidationError
			ce *store.ConflictError
		)
		switch {
		case errors.As(err, &ve):
			code = http.StatusBadRequest
		case errors.As(err, &ce):
			code = http.StatusConflict
		}
		writeJSON(w, code, errorView{err.Error()})
		return
	}
	if c.leads() { // else the leader starts them
		c.reconcile(r.Context())
	}
	v := ListView{Rollouts: []Summary{}}
	for i := range docs {
		if s, ok := c.Get(docs[i].Name); ok {
			v.Rollouts = append(v.Rollouts, summarize(s))
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *Controller) apiAct(w http.ResponseWriter, r *http.Request) {
	s, err := c.Act(r.Context(), r.PathValue("name"), r.PathValue("action"), whoOf(r))
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorView{err.Error()})
	case errors.Is(err, ErrFinished):
		writeJSON(w, http.StatusConflict, errorView{err.Error()})
	case errors.Is(err, ErrNotLeader):
		writeJSON(w, http.StatusMisdirectedRequest, errorView{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorView{err.Error()})
	default:
		writeJSON(w, http.StatusOK, summarize(s))
	}
}
