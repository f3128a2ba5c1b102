package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshscope/meshscope/control/auth"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/store"
)

// APIPrefix starts the guard API paths (same prefix as the policy API).
const APIPrefix = "/api/mesh/v1"

// View is a guard as GET /api/mesh/v1/guards shows it.
type View struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	// Mode is dry-run or enforce.
	Mode string `json:"mode"`
	// State is armed, paused, triggered-dry-run, acting or cooling-down.
	State string `json:"state"`
	// When is the condition in words.
	When string `json:"when"`
	// SLO names the SLO of an SLO condition (the UI lists the guard on
	// that SLO's page).
	SLO string `json:"slo,omitempty"`
	// Then lists the configured actions.
	Then []string `json:"then"`
	// Action is the active action (dry-run: the one it would have made).
	Action        *ActionView `json:"action,omitempty"`
	CooldownUntil *time.Time  `json:"cooldown_until,omitempty"`
	// Error is the last failed write, if any.
	Error string `json:"error,omitempty"`
	// LastEvent is the guard's newest event.
	LastEvent *Event `json:"last_event,omitempty"`
}

// ActionView is an active action with its revert point.
type ActionView struct {
	Started time.Time `json:"started"`
	DryRun  bool      `json:"dry_run"`
	Summary string    `json:"summary"`
	// Version is the policy version the action wrote.
	Version uint64 `json:"version,omitempty"`
	// Changes are the documents before (the revert point) and after.
	Changes []store.Change `json:"changes"`
}

// ListView answers GET /api/mesh/v1/guards.
type ListView struct {
	Guards []View `json:"guards"`
}

// EventsView answers GET /api/mesh/v1/events.
type EventsView struct {
	Events []Event `json:"events"`
}

// OpResult answers POST /api/mesh/v1/guards/{name}/{op}.
type OpResult struct {
	Guard View `json:"guard"`
	// Event is the event the operation recorded.
	Event *Event `json:"event,omitempty"`
}

// RegisterRoutes adds the guard API to mux.
func (c *Controller) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+APIPrefix+"/guards", c.handleList)
	mux.HandleFunc("GET "+APIPrefix+"/guards/{name}", c.handleGet)
	mux.HandleFunc("POST "+APIPrefix+"/guards/{name}/{op}", c.handleOp)
	mux.HandleFunc("GET "+APIPrefix+"/events", c.handleEvents)
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

// DescribeWhen is a guard's condition in words.
func DescribeWhen(g *policy.Guard) string {
	if g.When.SLO != "" {
		return fmt.Sprintf("SLO %s burns at %s level", g.When.SLO, g.When.Burn)
	}
	s := "alert " + g.When.Alert + " fires"
	if len(g.When.Labels) > 0 {
		b, _ := json.Marshal(g.When.Labels)
		s += " with " + string(b)
	}
	return s
}

// DescribeThen lists a guard's actions in words.
func DescribeThen(g *policy.Guard) []string {
	var out []string
	t := g.Then
	if s := t.Shift; s != nil {
		if s.To != "" {
			out = append(out, "shift to "+s.To)
		} else {
			out = append(out, "shift to "+weightsText(backendsOf(s.Weights)))
		}
	}
	if e := t.Eject; e != nil {
		out = append(out, "eject "+e.Version)
	}
	if b := t.Break; b != nil {
		out = append(out, fmt.Sprintf("break (%v%% probes)", b.ProbePercent))
	}
	if s := t.Shed; s != nil {
		if s.Percent > 0 {
			out = append(out, fmt.Sprintf("shed %v%%", s.Percent))
		} else {
			out = append(out, fmt.Sprintf("shed to %v rps", s.RequestsPerSecond))
		}
	}
	return out
}

// lastEvents answers each guard's newest event (of the newest keepEvents).
func (c *Controller) lastEvents(ctx context.Context) map[string]*Event {
	evs, err := c.events.list(ctx, "", "", keepEvents)
	if err != nil {
		c.logger.Warn("guard events", "err", err)
	}
	out := map[string]*Event{}
	for i := range evs {
		if out[evs[i].Guard] == nil {
			out[evs[i].Guard] = &evs[i]
		}
	}
	return out
}

// lastEvent answers a guard's newest event (nil: none).
func (c *Controller) lastEvent(ctx context.Context, name string) *Event {
	evs, err := c.events.list(ctx, name, "", 1)
	if err != nil {
		c.logger.Warn("guard events", "guard", name, "err", err)
	}
	if len(evs) == 1 {
		return &evs[0]
	}
	return nil
}

// viewLocked builds a guard's view; last is its newest event.
func (c *Controller) viewLocked(d *policy.Document, last *Event) View {
	g := d.Guard()
	v := View{Name: d.Name, Service: d.Service, Mode: string(d.Mode), When: DescribeWhen(g), SLO: g.When.SLO, Then: DescribeThen(g), State: StateArmed}
	if v.Mode == "" {
		v.Mode = string(policy.ModeDryRun)
	}
	st := c.state[d.Name]
	if st != nil {
		switch {
		case st.Paused:
			v.State = StatePaused
		case st.Action != nil && st.Action.DryRun:
			v.State = StateDryRun
		case st.Action != nil:
			v.State = StateActing
		case c.now().Before(st.CooldownUntil):
			v.State = StateCooling
		}
		if a := st.Action; a != nil {
			v.Action = &ActionView{Started: a.Started, DryRun: a.DryRun, Summary: a.Summary, Version: a.Version, Changes: changesOf(a.puts())}
		}
		if c.now().Before(st.CooldownUntil) {
			t := st.CooldownUntil
			v.CooldownUntil = &t
		}
		v.Error = st.Failed
	}
	v.LastEvent = last
	return v
}

// Guards returns every guard's view, sorted by name.
func (c *Controller) Guards(ctx context.Context, service string) []View {
	_, docs := c.store.Snapshot()
	guards := guardsOf(docs)
	last := c.lastEvents(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []View{}
	for i := range guards {
		if service == "" || guards[i].Service == service {
			out = append(out, c.viewLocked(&guards[i], last[guards[i].Name]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Controller) handleList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ListView{Guards: c.Guards(r.Context(), r.URL.Query().Get("service"))})
}

func (c *Controller) guardDoc(name string) (*policy.Document, bool) {
	it, ok := c.store.Get(policy.Key{Kind: policy.KindGuard, Name: name})
	if !ok || it.Guard() == nil {
		return nil, false
	}
	d := it.Document
	return &d, true
}

func (c *Controller) handleGet(w http.ResponseWriter, r *http.Request) {
	d, ok := c.guardDoc(r.PathValue("name"))
	if !ok {
		writeJSON(w, http.StatusNotFound, errorView{fmt.Sprintf("guard %q not found", r.PathValue("name"))})
		return
	}
	last := c.lastEvent(r.Context(), d.Name)
	c.mu.Lock()
	v := c.viewLocked(d, last)
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (c *Controller) handleEvents(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > keepEvents {
			writeJSON(w, http.StatusBadRequest, errorView{fmt.Sprintf("limit: %q: want 1..%d", s, keepEvents)})
			return
		}
		limit = n
	}
	evs, err := c.events.list(r.Context(), r.URL.Query().Get("guard"), r.URL.Query().Get("service"), limit)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorView{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, EventsView{Events: evs})
}

// Operations on a guard.
const (
	OpPause   = "pause"
	OpResume  = "resume"
	OpRevert  = "revert"
	OpPromote = "promote"
)

// ErrNotFound is an operation on a guard that does not exist.
var ErrNotFound = errors.New("guard not found")

// ErrNotLeader answers an operation sent to a server of a cluster that does
// not lead the controllers: only the leader acts and saves guard state.
var ErrNotLeader = errors.New("this server does not lead the controllers: send the operation to the leader (GET /api/mesh/v1/status names it)")

// Operate pauses, resumes, reverts or promotes a guard on behalf of who.
func (c *Controller) Operate(ctx context.Context, name, op, who string) (OpResult, error) {
	if c.opts.Leader != nil && !c.opts.Leader.IsLeader() {
		return OpResult{}, ErrNotLeader
	}
	d, ok := c.guardDoc(name)
	if !ok {
		return OpResult{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	var promotedAt uint64
	var promotedChanges []store.Change
	if op == OpPromote {
		if d.Mode == policy.ModeEnforce {
			return OpResult{}, fmt.Errorf("guard %q is already in enforce mode", name)
		}
		promoted := clone(d)
		promoted.Mode = policy.ModeEnforce
		put := []store.Put{{Key: d.Key(), Expect: d, After: promoted}}
		res, err := c.store.CompareAndPut(put, store.ActionApply, store.ApplyOptions{Who: who})
		if err != nil {
			return OpResult{}, fmt.Errorf("promoting guard %q: %w", name, err)
		}
		d, promotedAt, promotedChanges = promoted, res.Version, changesOf(put)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stateOf(name)
	c.emitted = nil
	mode := string(d.Mode)
	switch op {
	case OpPause:
		if st.Paused {
			return OpResult{}, fmt.Errorf("guard %q is already paused", name)
		}
		st.Paused = true
		c.emitLocked(ctx, Event{Guard: name, Service: d.Service, Kind: EventPaused, Mode: mode, Summary: "paused: no automatic action or revert until resumed", Who: who})
	case OpResume:
		if !st.Paused {
			return OpResult{}, fmt.Errorf("guard %q is not paused", name)
		}
		st.Paused = false
		st.ClearSince = time.Time{}
		c.emitLocked(ctx, Event{Guard: name, Service: d.Service, Kind: EventResumed, Mode: mode, Summary: "resumed", Who: who})
	case OpRevert:
		if err := c.revertLocked(ctx, name, st, who, d); err != nil {
			c.saveLocked()
			c.updateFiringLocked()
			return OpResult{}, fmt.Errorf("reverting guard %q: %w", name, err)
		}
	case OpPromote:
		c.emitLocked(ctx, Event{Guard: name, Service: d.Service, Kind: EventPromoted, Mode: mode, Summary: "promoted from dry-run to enforce", Who: who,
			Changes: promotedChanges, Version: promotedAt})
	default:
		return OpResult{}, fmt.Errorf("%q is not an operation (want pause, resume, revert or promote)", op)
	}
	c.saveLocked()
	c.updateFiringLocked()
	res := OpResult{Guard: c.viewLocked(d, c.emitted), Event: c.emitted}
	c.Trigger()
	return res, nil
}

func (c *Controller) handleOp(w http.ResponseWriter, r *http.Request) {
	res, err := c.Operate(r.Context(), r.PathValue("name"), r.PathValue("op"), requester(r))
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorView{err.Error()})
	case errors.Is(err, ErrNotLeader):
		writeJSON(w, http.StatusMisdirectedRequest, errorView{err.Error()})
	case errors.As(err, new(*store.StaleError)), errors.As(err, new(*store.ConflictError)):
		writeJSON(w, http.StatusConflict, errorView{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorView{err.Error()})
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// HeaderWho names the operator (as in the policy API).
const HeaderWho = auth.HeaderWho

func requester(r *http.Request) string { return auth.Who(r) }
