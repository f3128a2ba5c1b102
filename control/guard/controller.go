package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/jsonlog"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/registry"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/control/store"
)

// States of a guard, as the API shows them.
const (
	StateArmed     = "armed"             // watching its condition
	StatePaused    = "paused"            // an operator paused it: no automatic action or revert
	StateDryRun    = "triggered-dry-run" // dry-run: it would be acting now
	StateActing    = "acting"            // enforce: its action is in the policies
	StateCooling   = "cooling-down"      // reverted; no new action before the cooldown ends
	StateNoService = "error"             // its last action could not be written
)

// Store is the policy store the guards read and write.
type Store interface {
	Snapshot() (uint64, []policy.Document)
	Get(key policy.Key) (store.Item, bool)
	CompareAndPut(puts []store.Put, action string, opts store.ApplyOptions) (store.Result, error)
}

// Alerts are the rules engine's groups, whose alerts guards watch.
type Alerts interface {
	RuleGroups() []*rules.Group
}

// Instances tells how many inbound proxies serve a service.
type Instances interface {
	View(service string) registry.View
}

// Leadership tells whether this server leads its cluster's controllers
// (control/etcdstate.Elector); only the leader evaluates guards.
type Leadership interface {
	IsLeader() bool
}

// Notifier sends events to Alertmanager as informational alerts.
type Notifier interface {
	Notify(alerts ...*notifier.Alert)
}

// Options configure the controller.
type Options struct {
	// Dir holds events.log and state.json.
	Dir string
	// EvalInterval is the rules engine's, for the SLOs' alert windows.
	EvalInterval time.Duration
	// Tick is how often guards are evaluated besides after each rule
	// evaluation. Default 1s.
	Tick time.Duration
	// ExternalURL is where the UI is reached, for links in alerts.
	ExternalURL string
	// Leader, when set, lets guards act only while it leads.
	Leader Leadership
	// State keeps the guards' state (their actions and revert points);
	// default state.json in Dir.
	State StateStore
	// Events keeps the guards' events; default events.log in Dir. The
	// servers of a cluster share one (control/etcdstate.Journal).
	Events jsonlog.Journal
}

// StateStore keeps the guards' state as one JSON document named "state":
// a file in Dir by default, or a store the servers of a cluster share
// (control/etcdstate.Blobs).
type StateStore interface {
	Load() (map[string][]byte, error)
	Save(name string, b []byte) error
}

// stateName is the guards' document in the StateStore.
const stateName = "state"

// stateFile is the default StateStore: state.json in the guard directory.
type stateFile struct{ path string }

func (f stateFile) Load() (map[string][]byte, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading guard state: %w", err)
	}
	return map[string][]byte{stateName: b}, nil
}

func (f stateFile) Save(_ string, b []byte) error { return writeFileSync(f.path, b) }

// Controller evaluates the guards. Run it as a lifecycle runner; call
// Trigger after every rule evaluation.
type Controller struct {
	opts      Options
	store     Store
	alerts    Alerts
	instances Instances
	engine    promql.QueryEngine
	queryable storage.Queryable
	notify    Notifier       // may be nil
	audit     audit.Recorder // may be nil
	logger    *slog.Logger
	now       func() time.Time
	trigger   chan struct{}

	mu     sync.Mutex
	state  map[string]*guardState // by guard name
	events eventStore
	firing map[string]bool // service → an enforced action is active
	// emitted is the last event recorded, for Operate's answer.
	emitted *Event

	evals      prometheus.Counter
	evalTime   prometheus.Histogram
	eventCount *prometheus.CounterVec
	active     prometheus.Gauge
}

// guardState is what the controller remembers of a guard; it is saved in
// state.json on every change.
type guardState struct {
	Paused bool `json:"paused,omitempty"`
	// Action is the active action (or, in dry-run, the one it would have
	// made); nil while armed.
	Action *action `json:"action,omitempty"`
	// CooldownUntil is when the guard may act again after a revert.
	CooldownUntil time.Time `json:"cooldown_until,omitzero"`
	// ClearSince is when the condition turned false while acting.
	ClearSince time.Time `json:"clear_since,omitzero"`
	// LastSkip is the reason of the last skipped event, not repeated.
	LastSkip string `json:"last_skip,omitempty"`
	// Failed is the last write error.
	Failed string `json:"failed,omitempty"`
}

// action is an applied (or, dry-run, imagined) action and its revert point.
type action struct {
	Started time.Time `json:"started"`
	DryRun  bool      `json:"dry_run"`
	Service string    `json:"service"`
	Summary string    `json:"summary"`
	Version uint64    `json:"version,omitempty"`
	// Pending is set while the action is saved but not yet written to
	// the policies (write-ahead): a server taking the controllers over
	// finds out from the policies whether the write happened.
	Pending bool `json:"pending,omitempty"`
	// Writes are the documents before (the revert point; nil = absent)
	// and after the action.
	Writes []write `json:"writes"`
}

type write struct {
	Key    policy.Key       `json:"key"`
	Before *policy.Document `json:"before,omitempty"`
	After  *policy.Document `json:"after,omitempty"`
}

func (a *action) puts() []store.Put {
	out := make([]store.Put, len(a.Writes))
	for i, w := range a.Writes {
		out[i] = store.Put{Key: w.Key, Expect: w.Before, After: w.After}
	}
	return out
}

// New opens the event log and state in opts.Dir.
func New(opts Options, st Store, alerts Alerts, inst Instances, engine promql.QueryEngine, q storage.Queryable, notify Notifier, reg prometheus.Registerer, logger *slog.Logger) (*Controller, error) {
	if opts.Dir == "" {
		return nil, errors.New("guard: dir must be set")
	}
	if opts.EvalInterval <= 0 {
		return nil, errors.New("guard: evaluation interval must be positive")
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating guard directory: %w", err)
	}
	c := &Controller{
		opts: opts, store: st, alerts: alerts, instances: inst, engine: engine, queryable: q, notify: notify,
		logger: logger, now: time.Now, trigger: make(chan struct{}, 1),
		state: map[string]*guardState{}, firing: map[string]bool{},
		evals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_guard_evaluations_total", Help: "Evaluations of every guard.",
		}),
		evalTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshscope_guard_evaluation_seconds", Help: "Time to evaluate every guard once.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
		eventCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_guard_events_total", Help: "Guard events, by kind.",
		}, []string{"kind"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_guard_active_actions", Help: "Enforced guard actions in the policies now.",
		}),
	}
	if reg != nil {
		for _, m := range []prometheus.Collector{c.evals, c.evalTime, c.eventCount, c.active} {
			if err := reg.Register(m); err != nil {
				return nil, fmt.Errorf("guard: registering metrics: %w", err)
			}
		}
	}
	if c.opts.State == nil {
		c.opts.State = stateFile{filepath.Join(opts.Dir, "state.json")}
	}
	if err := c.loadState(); err != nil {
		return nil, err
	}
	if opts.Events != nil {
		c.events = sharedEvents{opts.Events}
	} else {
		ev, err := openEvents(opts.Dir)
		if err != nil {
			return nil, err
		}
		c.events = ev
	}
	c.updateFiringLocked()
	return c, nil
}

// loadState reads the guards' state: at start, and when this server
// takes the controllers over (the last leader's actions and revert
// points).
func (c *Controller) loadState() error {
	raw, err := c.opts.State.Load()
	if err != nil {
		return err
	}
	state := map[string]*guardState{}
	if b, ok := raw[stateName]; ok {
		if err := json.Unmarshal(b, &state); err != nil {
			return fmt.Errorf("guard state is damaged: %w", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = state
	if c.events != nil {
		c.updateFiringLocked()
	}
	return nil
}

// SetAudit makes the controller append its actions and the operators'
// operations to r. Call before Run.
func (c *Controller) SetAudit(r audit.Recorder) { c.audit = r }

// Trigger asks for an evaluation now (coalesced); the rules engine calls
// it after each evaluation.
func (c *Controller) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// AfterEval is a rules-engine hook that triggers an evaluation.
func (c *Controller) AfterEval(context.Context, *rules.Group, time.Time) { c.Trigger() }

// Firing reports whether a guard's enforced action is active on service.
func (c *Controller) Firing(service string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firing[service]
}

// Run evaluates the guards after each trigger and every tick until ctx
// ends, then closes the event log.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.Tick)
	defer t.Stop()
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		_ = c.events.close()
	}()
	led := false // with a Leader: whether this server led at the last tick
	if c.opts.Leader == nil {
		c.mu.Lock()
		c.settlePendingLocked(ctx) // a crash between an action's save and its write
		c.mu.Unlock()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.trigger:
		}
		if c.opts.Leader != nil {
			was := led
			if led = c.opts.Leader.IsLeader(); !led {
				continue
			}
			if !was {
				if err := c.loadState(); err != nil {
					c.logger.Error("taking the guards over", "err", err)
					led = false // try again on the next tick
					continue
				}
				c.mu.Lock()
				c.settlePendingLocked(ctx)
				c.mu.Unlock()
			}
		}
		c.Evaluate(ctx)
	}
}

// guardsOf returns the Guard documents and every document by key.
func guardsOf(docs []policy.Document) []policy.Document {
	var out []policy.Document
	for _, d := range docs {
		if d.Kind == policy.KindGuard && d.Guard() != nil {
			out = append(out, d)
		}
	}
	return out
}

// firingAlerts returns the firing alerts of every rule group.
func (c *Controller) firingAlerts() []*rules.Alert {
	var out []*rules.Alert
	for _, g := range c.alerts.RuleGroups() {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == rules.StateFiring {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// alertIndex holds the firing alerts by name and by SLO, so that matching
// 1,000 guards against 1,000 alerts is not a product.
type alertIndex struct {
	byName map[string][]*rules.Alert
	bySLO  map[string][]*rules.Alert // SLO burn alerts by slo label
}

func indexAlerts(alerts []*rules.Alert) alertIndex {
	ix := alertIndex{byName: map[string][]*rules.Alert{}, bySLO: map[string][]*rules.Alert{}}
	for _, a := range alerts {
		name := a.Labels.Get(labels.AlertName)
		if name == slo.AlertName {
			ix.bySLO[a.Labels.Get("slo")] = append(ix.bySLO[a.Labels.Get("slo")], a)
		}
		ix.byName[name] = append(ix.byName[name], a)
	}
	return ix
}

// match returns the firing alert that satisfies the guard's condition, or
// nil. A page alert satisfies burn: ticket too.
func (ix alertIndex) match(g *policy.Guard) *rules.Alert {
	cands := ix.byName[g.When.Alert]
	if g.When.SLO != "" {
		cands = ix.bySLO[g.When.SLO]
	}
	for _, a := range cands {
		l := a.Labels
		if sev := l.Get("severity"); g.When.SLO != "" && sev != g.When.Burn && sev != slo.SeverityPage {
			continue
		}
		ok := true
		for k, v := range g.When.Labels {
			ok = ok && l.Get(k) == v
		}
		if ok {
			return a
		}
	}
	return nil
}

// Evaluate evaluates every guard once.
func (c *Controller) Evaluate(ctx context.Context) {
	start := time.Now()
	_, docs := c.store.Snapshot()
	guards := guardsOf(docs)
	alerts := indexAlerts(c.firingAlerts())
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	names := map[string]bool{}
	for i := range guards {
		d := &guards[i]
		names[d.Name] = true
		if c.step(ctx, d, docs, alerts.match(d.Guard())) {
			changed = true
		}
	}
	// A deleted guard's action is reverted.
	for name, st := range c.state {
		if names[name] {
			continue
		}
		if st.Action != nil {
			c.revertLocked(ctx, name, st, "guard deleted", nil)
		}
		delete(c.state, name)
		changed = true
	}
	if changed {
		c.saveLocked()
	}
	c.updateFiringLocked()
	c.evals.Inc()
	c.evalTime.Observe(time.Since(start).Seconds())
}

func (c *Controller) stateOf(name string) *guardState {
	st := c.state[name]
	if st == nil {
		st = &guardState{}
		c.state[name] = st
	}
	return st
}

// step evaluates one guard; it reports whether its state changed.
func (c *Controller) step(ctx context.Context, d *policy.Document, docs []policy.Document, alert *rules.Alert) bool {
	g := d.Guard()
	st := c.stateOf(d.Name)
	before := *st
	now := c.now()
	dryRun := d.Mode != policy.ModeEnforce
	if st.Paused {
		return false
	}
	if a := st.Action; a != nil {
		switch {
		case a.DryRun && !dryRun:
			// Promoted while it would be acting: act for real now.
			st.Action = nil
		case g.MaxDuration > 0 && now.Sub(a.Started) >= g.MaxDuration.D():
			c.revertLocked(ctx, d.Name, st, "max_duration", d)
		case alert != nil:
			st.ClearSince = time.Time{}
		case g.Revert == policy.RevertAuto:
			if st.ClearSince.IsZero() {
				st.ClearSince = now
			}
			if now.Sub(st.ClearSince) >= g.RevertAfter.D() {
				c.revertLocked(ctx, d.Name, st, "auto-revert", d)
			}
		}
	}
	if st.Action == nil && alert != nil && !now.Before(st.CooldownUntil) {
		c.actLocked(ctx, d, docs, alert, dryRun)
	}
	if alert == nil {
		st.LastSkip = ""
	}
	return before != *st
}

// condition describes the alert for events, with the SLO's burn rates.
func (c *Controller) condition(ctx context.Context, d *policy.Document, a *rules.Alert) *Condition {
	if a == nil {
		return nil
	}
	cond := &Condition{Alert: a.Labels.Get(labels.AlertName), Labels: a.Labels.Map(), Value: a.Value, ActiveAt: a.ActiveAt}
	if name := d.Guard().When.SLO; name != "" {
		cond.BurnRates = map[string]float64{}
		if s, ok := c.store.Get(policy.Key{Kind: policy.KindSLO, Name: name}); ok && s.SLO() != nil {
			budget := slo.Budget(s.SLO().Objective)
			for _, w := range slo.WindowsOf(slo.Windows(s.SLO().Window.D(), c.opts.EvalInterval)) {
				q := fmt.Sprintf(`%s%s{slo=%q}`, slo.ErrorRatioPrefix, slo.PromDuration(w), name)
				if v, ok := c.scalar(ctx, q); ok && budget > 0 {
					cond.BurnRates[slo.PromDuration(w)] = math.Round(v/budget*100) / 100
				}
			}
		}
	}
	return cond
}

func (c *Controller) actLocked(ctx context.Context, d *policy.Document, docs []policy.Document, alert *rules.Alert, dryRun bool) {
	st := c.stateOf(d.Name)
	in := c.planInput(ctx, d, docs)
	p, err := makePlan(in)
	if err == nil {
		err = c.checkTargets(ctx, d, p.targets)
	}
	mode := string(policy.ModeEnforce)
	if dryRun {
		mode = string(policy.ModeDryRun)
	}
	if err != nil {
		if st.LastSkip != err.Error() {
			st.LastSkip = err.Error()
			c.emitLocked(ctx, Event{Guard: d.Name, Service: d.Service, Kind: EventSkipped, Mode: mode, Condition: c.condition(ctx, d, alert),
				Summary: "not acting: " + err.Error(), Who: "guard"})
		}
		return
	}
	st.LastSkip = ""
	summary := strings.Join(p.summary, "; ")
	a := &action{Started: c.now(), DryRun: dryRun, Service: d.Service, Summary: summary}
	for _, put := range p.puts {
		a.Writes = append(a.Writes, write{Key: put.Key, Before: put.Expect, After: put.After})
	}
	ev := Event{Guard: d.Name, Service: d.Service, Mode: mode, Condition: c.condition(ctx, d, alert), Changes: changesOf(p.puts), Who: "guard"}
	if dryRun {
		ev.Kind, ev.Summary = EventWouldAct, "would have acted: "+summary
	} else {
		// The revert point is saved before the write: a leader that dies
		// between the two leaves its successor an action to settle
		// (settlePendingLocked), never a write without its revert point.
		// The save is fenced: a deposed leader writes nothing.
		a.Pending = true
		st.Action = a
		if err := c.saveErrLocked(); err != nil {
			st.Action = nil
			st.Failed = err.Error()
			c.logger.Warn("guard: not acting, its state could not be saved", "guard", d.Name, "err", err)
			return
		}
		res, err := c.store.CompareAndPut(p.puts, store.ActionGuard, store.ApplyOptions{Who: "guard:" + d.Name})
		a.Pending = false
		if err != nil {
			// A concurrent change: the next evaluation plans again.
			st.Action = nil
			st.Failed = err.Error()
			c.saveLocked() // no pending action left behind
			c.emitLocked(ctx, Event{Guard: d.Name, Service: d.Service, Kind: EventFailed, Mode: mode, Condition: ev.Condition, Summary: "could not act: " + err.Error(), Who: "guard"})
			return
		}
		st.Failed = ""
		a.Version = res.Version
		ev.Kind, ev.Summary, ev.Version = EventActed, summary, res.Version
	}
	st.Action, st.ClearSince = a, time.Time{}
	c.emitLocked(ctx, ev)
}

// revertLocked restores the documents the guard's action replaced. d is
// the guard document (nil when deleted).
func (c *Controller) revertLocked(ctx context.Context, name string, st *guardState, who string, d *policy.Document) error {
	a := st.Action
	if a == nil {
		return errors.New("no active action to revert")
	}
	mode := string(policy.ModeEnforce)
	if a.DryRun {
		mode = string(policy.ModeDryRun)
	}
	puts := revertPuts(a.puts())
	ev := Event{Guard: name, Service: a.Service, Mode: mode, Changes: changesOf(puts), Who: who}
	if a.DryRun {
		ev.Kind, ev.Summary = EventWouldRevert, "would have reverted: "+a.Summary
	} else {
		res, err := c.store.CompareAndPut(puts, store.ActionGuard, store.ApplyOptions{Who: "guard:" + name + " (" + who + ")"})
		if err != nil {
			st.Failed = err.Error()
			c.emitLocked(ctx, Event{Guard: name, Service: a.Service, Kind: EventFailed, Mode: mode,
				Summary: "could not revert " + a.Summary + ": " + err.Error() + "; restore the policies by hand (meshscope rollback)", Who: who})
			if errors.As(err, new(*store.StaleError)) || errors.As(err, new(*store.ConflictError)) {
				// Someone changed the documents since: their change stands.
				st.Action = nil
			}
			return err
		}
		ev.Kind, ev.Summary, ev.Version = EventReverted, "reverted: "+a.Summary, res.Version
	}
	st.Action, st.ClearSince, st.Failed = nil, time.Time{}, ""
	cooldown := 5 * time.Minute
	if d != nil {
		cooldown = d.Guard().Cooldown.D()
	}
	st.CooldownUntil = c.now().Add(cooldown)
	c.emitLocked(ctx, ev)
	return nil
}

// planInput gathers what planning the guard's actions needs.
func (c *Controller) planInput(ctx context.Context, d *policy.Document, docs []policy.Document) planInput {
	in := planInput{guard: d, inboundRate: math.NaN()}
	for i := range docs {
		o := &docs[i]
		if o.Service != d.Service {
			continue
		}
		switch o.Kind {
		case policy.KindRoute:
			in.route = o
		case policy.KindResilience:
			in.res = o
		}
	}
	if c.instances != nil {
		v := c.instances.View(d.Service)
		seen := map[string]bool{}
		for _, e := range v.Endpoints {
			if e.Service == d.Service && e.Version != "" && !seen[e.Version] {
				seen[e.Version] = true
				in.versions = append(in.versions, e.Version)
			}
		}
		sort.Strings(in.versions)
		for _, p := range v.Proxies {
			if p.Service == d.Service && p.Connected && len(p.Inbound) > 0 {
				in.instances++
			}
		}
	}
	if d.Guard().Then.Shed != nil {
		q := fmt.Sprintf(`sum(rate(mesh_requests_total{direction="inbound",destination_service=%q}[%s]))`, d.Service, slo.PromDuration(c.rateWindow(d)))
		if v, ok := c.scalar(ctx, q); ok {
			in.inboundRate = v
		}
	}
	return in
}

// rateWindow is the window of the rates a guard looks at: its SLO's
// shortest alert window, or 1m.
func (c *Controller) rateWindow(d *policy.Document) time.Duration {
	if name := d.Guard().When.SLO; name != "" {
		if s, ok := c.store.Get(policy.Key{Kind: policy.KindSLO, Name: name}); ok && s.SLO() != nil {
			return slo.WindowsOf(slo.Windows(s.SLO().Window.D(), c.opts.EvalInterval))[0]
		}
	}
	return time.Minute
}

// minTargetWindow is the shortest window a target version's error ratio
// is read over: 15 of the proxies' 1 s pushes, so that a short SLO window
// (a few seconds in tests) on a loaded server neither misses the version's
// failures nor judges it on one or two samples.
const minTargetWindow = 15 * time.Second

// checkTargets refuses to send traffic to a version that is itself
// burning: its error ratio over the rate window above the limit.
func (c *Controller) checkTargets(ctx context.Context, d *policy.Document, targets []string) error {
	if len(targets) == 0 {
		return nil
	}
	g := d.Guard()
	limit := 5.0
	if g.Limits != nil && g.Limits.MaxTargetErrorPercent > 0 {
		limit = g.Limits.MaxTargetErrorPercent
	} else if g.When.SLO != "" {
		if s, ok := c.store.Get(policy.Key{Kind: policy.KindSLO, Name: g.When.SLO}); ok && s.SLO() != nil {
			bws := slo.Windows(s.SLO().Window.D(), c.opts.EvalInterval)
			limit = 100 * bws[0].Factor * slo.Budget(s.SLO().Objective)
		}
	}
	w := slo.PromDuration(max(c.rateWindow(d), minTargetWindow))
	for _, v := range targets {
		sel := fmt.Sprintf(`direction="inbound",destination_service=%q,destination_version=%q`, d.Service, v)
		q := fmt.Sprintf(`sum(rate(mesh_requests_total{%s,outcome="failure"}[%s])) / sum(rate(mesh_requests_total{%s}[%s]))`, sel, w, sel, w)
		ratio, ok := c.scalar(ctx, q)
		if ok && 100*ratio > limit {
			return fmt.Errorf("target version %s is burning too (%.1f%% errors over %s, limit %.3g%%)", v, 100*ratio, w, limit)
		}
	}
	return nil
}

// scalar runs an instant query and returns its single value.
func (c *Controller) scalar(ctx context.Context, q string) (float64, bool) {
	if c.engine == nil || c.queryable == nil {
		return 0, false
	}
	qry, err := c.engine.NewInstantQuery(ctx, c.queryable, nil, q, c.now())
	if err != nil {
		c.logger.Warn("guard query", "query", q, "err", err)
		return 0, false
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return 0, false
	}
	vec, err := res.Vector()
	if err != nil || len(vec) != 1 || math.IsNaN(vec[0].F) {
		return 0, false
	}
	return vec[0].F, true
}

// emitLocked records an event durably, sends it to Alertmanager and
// appends what changed the mesh or the guard to the audit log.
func (c *Controller) emitLocked(ctx context.Context, e Event) {
	e.Time = c.now().UTC()
	e, err := c.events.append(e)
	if err != nil {
		c.logger.Error("guard event not recorded", "guard", e.Guard, "kind", e.Kind, "err", err)
	}
	c.emitted = &e
	c.eventCount.WithLabelValues(e.Kind).Inc()
	c.logger.Info("guard", "guard", e.Guard, "service", e.Service, "event", e.Kind, "mode", e.Mode, "summary", e.Summary, "version", e.Version, "who", e.Who)
	if c.notify != nil {
		c.notify.Notify(c.alertOf(e))
	}
	c.auditEvent(ctx, e)
}

// ControllerWho names the guard controller in the audit log.
const ControllerWho = "controller:guard"

// auditEvent appends an event that changed policies or a guard's state
// (acted, reverted, failed, paused, resumed, promoted; not the dry-run
// "would" events) to the audit log as "guard.KIND". An event under a
// request's context (an operator's pause, resume, revert or promote)
// names the caller; the controller's own decisions name
// controller:guard, with what made it act in detail "by".
func (c *Controller) auditEvent(ctx context.Context, e Event) {
	switch e.Kind {
	case EventActed, EventReverted, EventFailed, EventPaused, EventResumed, EventPromoted:
	default:
		return
	}
	if c.audit == nil {
		return
	}
	en := audit.Entry{Action: "guard." + e.Kind, Version: e.Version,
		Detail: map[string]string{"guard": e.Guard, "service": e.Service, "mode": e.Mode, "summary": e.Summary}}
	if _, ok := auth.FromContext(ctx); ok {
		en.Who = e.Who
	} else {
		en.Who, en.Auth = ControllerWho, "controller"
		en.Detail["by"] = e.Who
	}
	if e.Kind == EventFailed {
		en.Outcome = e.Summary
	}
	if cond := e.Condition; cond != nil {
		en.Detail["alert"] = cond.Alert
		for w, v := range cond.BurnRates {
			en.Detail["burn_rate_"+w] = strconv.FormatFloat(v, 'g', 4, 64)
		}
	}
	en.Targets, en.Diff = store.ChangeText(e.Changes)
	if self := policy.KindGuard + "/" + e.Guard; !slices.Contains(en.Targets, self) {
		en.Targets = append([]string{self}, en.Targets...)
	}
	if err := c.audit.Record(ctx, en); err != nil {
		c.logger.Error("audit log append failed", "guard", e.Guard, "event", e.Kind, "err", err)
	}
}

// AlertName is the name of the informational alerts guard events send.
const AlertName = "MeshscopeGuardEvent"

func (c *Controller) alertOf(e Event) *notifier.Alert {
	lb := labels.NewBuilder(labels.EmptyLabels())
	lb.Set(labels.AlertName, AlertName)
	lb.Set("guard", e.Guard)
	lb.Set("service", e.Service)
	lb.Set("event", e.Kind)
	lb.Set("mode", e.Mode)
	lb.Set("severity", "info")
	ann := labels.FromStrings("summary", e.Summary, "who", e.Who,
		"guard_url", strings.TrimSuffix(c.opts.ExternalURL, "/")+APIPrefix+"/guards/"+e.Guard)
	return &notifier.Alert{Labels: lb.Labels(), Annotations: ann, StartsAt: e.Time, EndsAt: e.Time.Add(5 * time.Minute),
		GeneratorURL: strings.TrimSuffix(c.opts.ExternalURL, "/") + APIPrefix + "/events?guard=" + e.Guard}
}

func (c *Controller) saveLocked() {
	if err := c.saveErrLocked(); err != nil {
		c.logger.Error("guard state not saved", "err", err)
	}
}

func (c *Controller) saveErrLocked() error {
	b, err := json.Marshal(c.state)
	if err != nil {
		return fmt.Errorf("encoding guard state: %w", err)
	}
	return c.opts.State.Save(stateName, b)
}

// settlePendingLocked settles the actions a previous leader saved but may
// not have written (it died between the two): an action whose documents
// are in the policies is adopted with its revert point (and its event
// recorded if that leader did not get to it); one whose documents are not
// is dropped, and the guard plans afresh.
func (c *Controller) settlePendingLocked(ctx context.Context) {
	changed := false
	for name, st := range c.state {
		a := st.Action
		if a == nil || !a.Pending {
			continue
		}
		changed = true
		if !c.writtenLocked(a) {
			st.Action = nil
			c.logger.Info("guard: the previous leader's action was never written; planning again", "guard", name)
			continue
		}
		a.Pending = false
		if last := c.lastEvent(ctx, name); last != nil && last.Kind == EventActed && !last.Time.Before(a.Started) {
			a.Version = last.Version
			continue
		}
		c.emitLocked(ctx, Event{Guard: name, Service: a.Service, Kind: EventActed, Mode: string(policy.ModeEnforce),
			Summary: a.Summary + " (written by the previous leader; recorded by this server)", Changes: changesOf(a.puts()), Who: "guard"})
	}
	if changed {
		c.saveLocked()
		c.updateFiringLocked()
	}
}

// writtenLocked reports whether every document of a is in the policies
// as the action left it.
func (c *Controller) writtenLocked(a *action) bool {
	for _, w := range a.Writes {
		cur, ok := c.store.Get(w.Key)
		if w.After == nil && ok || w.After != nil && (!ok || !policy.Equal(&cur.Document, w.After)) {
			return false
		}
	}
	return true
}

func (c *Controller) updateFiringLocked() {
	f := map[string]bool{}
	n := 0
	for _, st := range c.state {
		if st.Action != nil && !st.Action.DryRun {
			f[st.Action.Service] = true
			n++
		}
	}
	c.firing = f
	c.active.Set(float64(n))
}
