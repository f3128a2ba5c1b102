package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/rollout/judge"
	"github.com/meshscope/meshscope/control/store"
)

// Store is the policy store: the controller reads Rollout documents from
// it and writes the service's Route through it.
type Store interface {
	List(kind, service string) (uint64, []store.Item)
	Apply(docs []policy.Document, opts store.ApplyOptions) (store.Result, error)
	Subscribe() <-chan struct{}
}

// GuardSource reports whether a guard of a service fires; a firing guard
// rolls the service's rollout back. A nil GuardSource means none.
type GuardSource interface {
	Firing(service string) bool
}

// BudgetSource reports an SLO's remaining error budget in percent (nil
// when the SLO has no traffic yet); control/slo.Manager is one.
type BudgetSource interface {
	RemainingBudget(ctx context.Context, slo string) (*float64, error)
}

// Leadership tells whether this server leads its cluster's controllers
// (control/etcdstate.Elector); only the leader runs rollouts.
type Leadership interface {
	IsLeader() bool
}

// Sampler gathers an interval's samples of the canary and the stable
// version; Collector is the real one.
type Sampler interface {
	Collect(ctx context.Context, service, canary, stable string, start, end time.Time) (canaryS, stableS judge.Sample, source string, err error)
}

// Config configures the controller.
type Config struct {
	// Dir holds the state files (<data>/rollouts).
	Dir string
	// Tick is how often due intervals are checked. Default 100ms.
	Tick time.Duration
	// Settle shifts the analysed window back: telemetry of the last
	// seconds is still on its way (proxies push metrics and flush spans
	// every second). Default 2s; negative = none.
	Settle time.Duration
}

// Options are the controller's optional sources.
type Options struct {
	Budget BudgetSource
	Guard  GuardSource
	// Leader, when set, lets the controller act only while it leads.
	Leader Leadership
	// State keeps the rollouts' states; default files in Config.Dir.
	State StateStore
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Controller runs the rollouts. Run it as a lifecycle runner.
type Controller struct {
	cfg     Config
	store   Store
	sampler Sampler
	opts    Options
	logger  *slog.Logger
	state   StateStore
	sub     <-chan struct{}

	mu     sync.Mutex
	states map[string]*State
	audit  audit.Recorder // may be nil

	intervals *prometheus.CounterVec
	events    *prometheus.CounterVec
	weight    *prometheus.GaugeVec
	decision  prometheus.Histogram
	analysis  prometheus.Histogram
}

// New loads the state files and subscribes to the store.
func New(cfg Config, st Store, sampler Sampler, opts Options, reg prometheus.Registerer, logger *slog.Logger) (*Controller, error) {
	if cfg.Dir == "" {
		return nil, errors.New("rollout: state dir must be set")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Settle == 0 {
		cfg.Settle = 2 * time.Second
	} else if cfg.Settle < 0 {
		cfg.Settle = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		cfg: cfg, store: st, sampler: sampler, opts: opts, logger: logger, state: opts.State,
		sub: st.Subscribe(),
		intervals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_rollout_intervals_total",
			Help: "Judged rollout intervals, by verdict.",
		}, []string{"verdict"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_rollout_events_total",
			Help: "Rollout events, by type.",
		}, []string{"type"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshscope_rollout_canary_weight",
			Help: "Canary weight in percent of each rollout document.",
		}, []string{"rollout", "service"}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshscope_rollout_decision_seconds",
			Help:    "Time from the end of an interval to the route change it decided.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		analysis: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshscope_rollout_analysis_seconds",
			Help:    "Time to gather and judge one interval of one rollout.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.intervals, c.events, c.weight, c.decision, c.analysis} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("rollout metrics: %w", err)
			}
		}
	}
	if c.state == nil {
		c.state = files{cfg.Dir}
	}
	if opts.Leader == nil { // else Run resumes once this server leads
		if err := c.resume("server restarted"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// resume loads the states and resumes every running rollout at its step;
// the interval no one judged is not judged (its samples straddle the
// outage or the change of leader). why says what happened.
func (c *Controller) resume(why string) error {
	states, err := decodeStates(c.state)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = states
	now := c.opts.Now()
	for _, s := range states {
		if terminal(s.Phase) {
			continue
		}
		s.IntervalStart = now
		s.addEvent(Event{Time: now, Type: EventResumed, Step: s.Step, Weight: s.Weight,
			Message: fmt.Sprintf("%s: resuming at step %d (canary %d%%), failures so far %d", why, s.Step+1, s.Weight, s.Failures)})
		// The state is the truth: a change of weight written by a server
		// that died before saving it (or a first weight saved but not
		// written) is set back to the state's weight, and judged again.
		if w, err := c.setWeight(s, s.Weight); err != nil {
			c.event(context.Background(), s, Event{Time: now, Type: EventError, Message: fmt.Sprintf("setting the route back to canary %d%%: %v", s.Weight, err)})
		} else if w != nil {
			c.event(context.Background(), s, Event{Time: now, Type: EventResumed, write: w,
				Message: fmt.Sprintf("the route did not match the saved state (a change that was not saved): canary set back to %d%%", s.Weight)})
		}
		if err := c.saveErr(s); err != nil {
			return err
		}
		c.weight.WithLabelValues(s.Name, s.Service).Set(float64(s.Weight))
	}
	return nil
}

// Run reconciles the documents and judges due intervals until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	led := c.opts.Leader == nil // a server of a cluster takes over when it first leads
	if led {
		c.reconcile(ctx)
	}
	// leading reports whether this server leads; when it has just become
	// the leader it takes the rollouts on from the state the last leader
	// left.
	leading := func() bool {
		now := c.leads()
		if now && !led {
			if err := c.resume("this server took the controllers over"); err != nil {
				c.logger.Error("taking the rollouts over", "err", err)
				now = false // try again on the next tick
			}
		}
		led = now
		return now
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-c.sub:
			if !ok {
				c.sub = nil
			}
			if leading() {
				c.reconcile(ctx)
			}
		case <-t.C:
			was := led
			if !leading() {
				continue
			}
			if !was {
				c.reconcile(ctx) // a new leader picks up what changed meanwhile
			}
			c.guardCheck(ctx)
			c.judgeDue(ctx)
		}
	}
}

// leads reports whether this server runs the rollouts (always, alone).
func (c *Controller) leads() bool { return c.opts.Leader == nil || c.opts.Leader.IsLeader() }

// who is how the controller signs its route changes.
func who(name string) string { return "rollout " + name }

func (c *Controller) event(ctx context.Context, s *State, e Event) {
	if e.Time.IsZero() {
		e.Time = c.opts.Now()
	}
	e.Step, e.Weight = s.Step, s.Weight
	w := e.write
	e.write = nil
	s.addEvent(e)
	s.Updated = e.Time
	c.events.WithLabelValues(e.Type).Inc()
	c.logger.Info("rollout "+e.Type, "rollout", s.Name, "service", s.Service, "step", s.Step+1, "weight", s.Weight, "msg", e.Message)
	c.auditEvent(ctx, s, e, w)
}

// ControllerWho names the rollout controller in the audit log.
const ControllerWho = "controller:rollout"

// auditEvent appends an event that changed the rollout or its route to
// the audit log as "rollout.TYPE", with the route diff and version of
// the weight change w the event reports (nil: none). Under a request's context (an
// operator's start, pause, resume, promote or abort) the entry names the
// caller; the controller's own decisions name controller:rollout.
func (c *Controller) auditEvent(ctx context.Context, s *State, e Event, w *store.Result) {
	switch e.Type {
	case EventHeld, EventFailed:
		return // judgements without a change: the rollout's own events
	}
	if c.audit == nil {
		return
	}
	en := audit.Entry{Action: "rollout." + e.Type, Targets: []string{policy.KindRollout + "/" + s.Name},
		Detail: map[string]string{"rollout": s.Name, "service": s.Service, "weight": strconv.Itoa(s.Weight), "message": e.Message}}
	if _, ok := auth.FromContext(ctx); ok {
		en.Who = e.Who // "" lets the log name the authenticated caller
	} else {
		en.Who, en.Auth = ControllerWho, "controller"
	}
	if e.Type == EventError {
		en.Outcome = e.Message
	}
	if w != nil {
		targets, diff := store.ChangeText(w.Changes)
		en.Targets, en.Diff, en.Version = append(en.Targets, targets...), diff, w.Version
	}
	if err := c.audit.Record(ctx, en); err != nil {
		c.logger.Error("audit log append failed", "rollout", s.Name, "event", e.Type, "err", err)
	}
}

// SetAudit makes the controller append rollout actions (the operators'
// and its own) to r. Call before Run.
func (c *Controller) SetAudit(r audit.Recorder) { c.audit = r }

func (c *Controller) save(s *State) {
	if err := c.saveErr(s); err != nil {
		c.logger.Error("saving rollout state", "rollout", s.Name, "err", err)
	}
}

func (c *Controller) saveErr(s *State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	return c.state.Save(s.Name, b)
}

// reconcile starts rollouts for new or changed documents and aborts
// rollouts whose document is gone.
func (c *Controller) reconcile(ctx context.Context) {
	_, items := c.store.List(policy.KindRollout, "")
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for i := range items {
		d := &items[i].Document
		if d.Rollout() == nil {
			continue
		}
		seen[d.Name] = true
		gen := generation(d)
		s := c.states[d.Name]
		if s != nil && s.Generation == gen && !s.DocumentGone {
			continue
		}
		c.start(ctx, d, gen, s)
	}
	for name, s := range c.states {
		if seen[name] || s.DocumentGone {
			continue
		}
		if !terminal(s.Phase) {
			c.finish(ctx, s, PhaseAborted, 0, "the Rollout document was deleted: traffic back to stable", "")
		}
		s.DocumentGone = true
		c.save(s)
	}
}

// start begins a rollout of d (replacing prev, the state of an earlier
// document of the same name).
func (c *Controller) start(ctx context.Context, d *policy.Document, gen string, prev *State) {
	now := c.opts.Now()
	spec := *d.Rollout()
	s := &State{
		Name: d.Name, Service: d.Service, Stable: spec.Stable, Canary: spec.Canary, Generation: gen, Spec: spec,
		Phase: PhaseProgressing, Started: now, StepStarted: now, IntervalStart: now, Updated: now,
		Weight: spec.Steps[0].Weight,
	}
	if prev != nil && !terminal(prev.Phase) && prev.Service == d.Service {
		// A changed document restarts the rollout from its first step;
		// the route before the first document stays the original.
		s.OriginalRoute, s.Route = prev.OriginalRoute, prev.Route
	} else {
		_, routes := c.store.List(policy.KindRoute, d.Service)
		if len(routes) > 0 {
			orig := routes[0].Document
			s.OriginalRoute, s.Route = &orig, orig.Name
		} else {
			s.Route = d.Name
		}
	}
	// Saved before the first route write, with the original route: a
	// leader that dies between the two leaves its successor the revert
	// point (resume sets the route to the saved weight), never a route
	// written by a rollout it does not know of. The save is fenced: a
	// deposed leader writes nothing.
	if err := c.saveErr(s); err != nil {
		c.logger.Warn("rollout not started: its state could not be saved", "rollout", d.Name, "err", err)
		return
	}
	c.states[d.Name] = s
	msg := fmt.Sprintf("rolling %s out over %s: steps %s, interval %s, failure limit %d", s.Canary, s.Stable, stepList(spec.Steps), spec.Interval, spec.FailureLimit)
	if prev != nil && !prev.DocumentGone && !terminal(prev.Phase) {
		msg = "document changed: restarting; " + msg
	}
	started := Event{Type: EventStarted, Message: msg}
	var err error
	if s.Weight < 100 {
		started.write, err = c.setWeight(s, s.Weight)
	}
	c.event(ctx, s, started)
	if s.Weight >= 100 {
		c.finish(ctx, s, PhasePromoted, 100, "the only step is 100%: promoted at once", "")
	} else if err != nil {
		c.finish(ctx, s, PhaseAborted, -1, fmt.Sprintf("could not set the first weight: %v", err), "")
	}
	c.save(s)
}

func stepList(steps []policy.Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%d%%", s.Weight)
		if s.Pause > 0 {
			parts[i] += " (pause " + s.Pause.String() + ")"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// setWeight writes the route that gives the canary weight percent; the
// result is nil when the route was already so.
func (c *Controller) setWeight(s *State, weight int) (*store.Result, error) {
	// The route name must not belong to another service.
	if s.OriginalRoute == nil {
		_, routes := c.store.List(policy.KindRoute, "")
		for _, r := range routes {
			if r.Name == s.Route && r.Service != s.Service {
				return nil, fmt.Errorf("route %q belongs to service %q", s.Route, r.Service)
			}
		}
	}
	doc := routeFor(s, s.OriginalRoute, weight)
	res, err := c.store.Apply([]policy.Document{doc}, store.ApplyOptions{Who: who(s.Name)})
	if err != nil {
		return nil, fmt.Errorf("writing route %q: %w", s.Route, err)
	}
	s.Weight = weight
	c.weight.WithLabelValues(s.Name, s.Service).Set(float64(weight))
	if !res.Changed {
		return nil, nil
	}
	return &res, nil
}

// finish ends a rollout: weight 100 (promoted), 0 (rolled back, aborted)
// or -1 (leave the route alone).
func (c *Controller) finish(ctx context.Context, s *State, phase string, weight int, msg, by string) {
	typ := map[string]string{PhasePromoted: EventPromoted, PhaseRolledBack: EventRolledBack, PhaseAborted: EventAborted}[phase]
	var w *store.Result
	if weight >= 0 {
		var err error
		if w, err = c.setWeight(s, weight); err != nil {
			c.event(ctx, s, Event{Type: EventError, Message: err.Error(), Who: by})
			msg += fmt.Sprintf(" (route not changed: %v)", err)
		}
	}
	s.Phase = phase
	s.Held = ""
	c.event(ctx, s, Event{Type: typ, Message: msg, Who: by, write: w})
}

// guardCheck rolls back every rollout whose service has a firing guard.
func (c *Controller) guardCheck(ctx context.Context) {
	if c.opts.Guard == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.states {
		if !terminal(s.Phase) && c.opts.Guard.Firing(s.Service) {
			c.finish(ctx, s, PhaseRolledBack, 0, fmt.Sprintf("a guard of %s is firing: rolled back to 100%% %s", s.Service, s.Stable), "")
			c.save(s)
		}
	}
}

type due struct {
	name, service, canary, stable string
	gen                           string
	start, end                    time.Time
}

// judgeDue judges every progressing rollout whose interval has ended.
func (c *Controller) judgeDue(ctx context.Context) {
	now := c.opts.Now()
	c.mu.Lock()
	var list []due
	for _, s := range c.states {
		if s.Phase != PhaseProgressing {
			continue
		}
		if end := s.IntervalStart.Add(s.Spec.Interval.D()); !now.Before(end) {
			list = append(list, due{s.Name, s.Service, s.Canary, s.Stable, s.Generation, s.IntervalStart, end})
		}
	}
	c.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	// Rollouts are judged by a few workers: the queries of one do not
	// delay the decisions of the others by more than necessary.
	work := make(chan due)
	var wg sync.WaitGroup
	for range min(judgeWorkers, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				c.judgeOne(ctx, d, now)
			}
		}()
	}
	for _, d := range list {
		work <- d
	}
	close(work)
	wg.Wait()
}

// judgeWorkers bounds the rollouts judged at once.
const judgeWorkers = 4

func (c *Controller) judgeOne(ctx context.Context, d due, now time.Time) {
	t0 := time.Now()
	cs, ss, source, err := c.sampler.Collect(ctx, d.service, d.canary, d.stable, d.start.Add(-c.cfg.Settle), now.Add(-c.cfg.Settle))
	c.mu.Lock()
	s := c.states[d.name]
	if s == nil || s.Generation != d.gen || s.Phase != PhaseProgressing || !s.IntervalStart.Equal(d.start) {
		c.mu.Unlock()
		return // changed meanwhile (operator, new document)
	}
	c.mu.Unlock()
	var budget *float64
	var budgetErr error
	if b := s.Spec.Analysis.SLOBudget; b != nil && c.opts.Budget != nil && err == nil {
		budget, budgetErr = c.opts.Budget.RemainingBudget(ctx, b.SLO)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s != c.states[d.name] || s.Phase != PhaseProgressing || !s.IntervalStart.Equal(d.start) {
		return
	}
	s.IntervalStart = now
	if err != nil {
		c.event(ctx, s, Event{Type: EventError, Message: fmt.Sprintf("interval not judged: %v", err)})
		c.save(s)
		return
	}
	a := s.Spec.Analysis
	cfg := judge.Config{
		MinRequests: uint64(s.Spec.MinRequests), Alpha: a.Alpha, MaxDegradation: a.MaxDegradation,
		MaxErrorIncrease: a.MaxErrorIncrease, PassScore: a.PassScore, MarginalScore: a.MarginalScore,
	}
	if a.SuccessRate != nil {
		cfg.MinSuccessRate = a.SuccessRate.Min
	}
	if a.Latency != nil {
		cfg.MaxP99 = a.Latency.P99Max.D().Seconds()
	}
	res := judge.Judge(cfg, cs, ss, source)
	c.analysis.Observe(time.Since(t0).Seconds())
	c.intervals.WithLabelValues(res.Verdict).Inc()
	iv := Interval{Start: d.start, End: now, Step: s.Step, Weight: s.Weight, Result: res, Budget: budget}
	score := res.Score
	numbers := summary(res)
	switch res.Verdict {
	case judge.Fail:
		s.Failures++
		if s.Failures >= s.Spec.FailureLimit {
			iv.Action = EventRolledBack
			s.addInterval(iv)
			c.finish(ctx, s, PhaseRolledBack, 0, fmt.Sprintf("failed interval %d of %d allowed: %s; %s — rolled back to 100%% %s", s.Failures, s.Spec.FailureLimit, res.Reason, numbers, s.Stable), "")
			c.decided(&s.Intervals[len(s.Intervals)-1], d.end)
			c.save(s)
			return
		}
		iv.Action = EventFailed
		s.Held = "failed interval: " + res.Reason
		c.event(ctx, s, Event{Type: EventFailed, Score: &score, Message: fmt.Sprintf("failed interval %d of %d allowed: %s; %s", s.Failures, s.Spec.FailureLimit, res.Reason, numbers)})
	case judge.Pass:
		step := s.Spec.Steps[s.Step]
		switch {
		case budgetErr != nil:
			iv.Action, s.Held = EventHeld, fmt.Sprintf("SLO %s budget unknown: %v", a.SLOBudget.SLO, budgetErr)
		case budget != nil && *budget < a.SLOBudget.MinRemaining:
			iv.Action, s.Held = EventHeld, fmt.Sprintf("SLO %s error budget %.1f%% < min_remaining %.0f%%", a.SLOBudget.SLO, *budget, a.SLOBudget.MinRemaining)
		case now.Before(s.StepStarted.Add(step.Pause.D())):
			iv.Action, s.Held = EventHeld, fmt.Sprintf("step pause until %s", s.StepStarted.Add(step.Pause.D()).UTC().Format(time.RFC3339))
		}
		if iv.Action == EventHeld {
			c.event(ctx, s, Event{Type: EventHeld, Score: &score, Message: s.Held + "; " + numbers})
			break
		}
		s.Held = ""
		next := s.Step + 1
		if next >= len(s.Spec.Steps) || s.Spec.Steps[next].Weight >= 100 {
			iv.Action = EventPromoted
			s.addInterval(iv)
			if next < len(s.Spec.Steps) {
				s.Step = next
			}
			c.finish(ctx, s, PhasePromoted, 100, fmt.Sprintf("last step passed (%s; %s): %s promoted to 100%%", res.Reason, numbers, s.Canary), "")
			c.decided(&s.Intervals[len(s.Intervals)-1], d.end)
			c.save(s)
			return
		}
		w, err := c.setWeight(s, s.Spec.Steps[next].Weight)
		if err != nil {
			iv.Action, s.Held = EventHeld, err.Error()
			c.event(ctx, s, Event{Type: EventError, Message: err.Error()})
			break
		}
		c.decided(&iv, d.end)
		iv.Action = EventAdvanced
		s.Step, s.StepStarted = next, now
		c.event(ctx, s, Event{Type: EventAdvanced, Score: &score, Message: fmt.Sprintf("interval passed (%s; %s): canary to %d%%", res.Reason, numbers, s.Weight), write: w})
	default:
		iv.Action, s.Held = EventHeld, res.Verdict+": "+res.Reason
		c.event(ctx, s, Event{Type: EventHeld, Score: &score, Message: s.Held + "; " + numbers})
	}
	s.addInterval(iv)
	c.save(s)
}

// decided records the decision latency: interval end to route change.
func (c *Controller) decided(iv *Interval, end time.Time) {
	sec := c.opts.Now().Sub(end).Seconds()
	iv.DecisionSeconds = sec
	c.decision.Observe(sec)
}

// summary renders an interval's numbers for an event.
func summary(r judge.Result) string {
	f := func(p *float64, scale float64, unit string) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f%s", *p*scale, unit)
	}
	parts := []string{fmt.Sprintf("canary %d req %d err p50 %s p99 %s, stable %d req %d err p50 %s p99 %s, latency from %s",
		r.Canary.Requests, r.Canary.Errors, f(r.Canary.P50, 1000, "ms"), f(r.Canary.P99, 1000, "ms"),
		r.Stable.Requests, r.Stable.Errors, f(r.Stable.P50, 1000, "ms"), f(r.Stable.P99, 1000, "ms"), r.LatencySource)}
	for _, m := range r.Metrics {
		s := m.Name + " " + m.Verdict
		if m.P != nil {
			s += fmt.Sprintf(" p=%.3g", *m.P)
		}
		if m.Effect != nil {
			s += fmt.Sprintf(" effect %+.2f", *m.Effect)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Errors of operator actions.
var (
	ErrNotFound = errors.New("rollout not found")
	ErrFinished = errors.New("rollout has finished")
	// ErrNotLeader answers an action sent to a server of a cluster that
	// does not lead the controllers.
	ErrNotLeader = errors.New("this server does not lead the controllers: send the action to the leader (GET /api/mesh/v1/status names it)")
)

// Actions an operator can take.
const (
	ActionPause   = "pause"
	ActionResume  = "resume"
	ActionPromote = "promote"
	ActionAbort   = "abort"
)

// Act carries out an operator action on a rollout and returns its state.
func (c *Controller) Act(ctx context.Context, name, action, by string) (State, error) {
	if !c.leads() {
		return State{}, ErrNotLeader
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.states[name]
	if s == nil {
		return State{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if terminal(s.Phase) {
		return State{}, fmt.Errorf("%w: %s is %s", ErrFinished, name, s.Phase)
	}
	now := c.opts.Now()
	switch action {
	case ActionPause:
		if s.Phase == PhasePaused {
			return s.copy(), nil
		}
		s.Phase = PhasePaused
		c.event(ctx, s, Event{Type: EventPaused, Message: fmt.Sprintf("paused at step %d (canary %d%%)", s.Step+1, s.Weight), Who: by})
	case ActionResume:
		if s.Phase == PhaseProgressing {
			return s.copy(), nil
		}
		s.Phase, s.IntervalStart = PhaseProgressing, now
		c.event(ctx, s, Event{Type: EventResumed, Message: fmt.Sprintf("resumed at step %d (canary %d%%)", s.Step+1, s.Weight), Who: by})
	case ActionPromote:
		c.finish(ctx, s, PhasePromoted, 100, fmt.Sprintf("promoted by hand at step %d: %s to 100%%", s.Step+1, s.Canary), by)
	case ActionAbort:
		c.finish(ctx, s, PhaseAborted, 0, fmt.Sprintf("aborted by hand at step %d: back to 100%% %s", s.Step+1, s.Stable), by)
	default:
		return State{}, fmt.Errorf("unknown action %q (want pause, resume, promote or abort)", action)
	}
	c.save(s)
	return s.copy(), nil
}

// copy returns a deep enough copy for readers outside the lock.
func (s *State) copy() State {
	out := *s
	out.Intervals = append([]Interval(nil), s.Intervals...)
	out.Events = append([]Event(nil), s.Events...)
	return out
}

// Get returns a rollout's state.
func (c *Controller) Get(name string) (State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.states[name]
	if s == nil {
		return State{}, false
	}
	return s.copy(), true
}

// List returns every rollout's state, by name.
func (c *Controller) List() []State {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]State, 0, len(c.states))
	for _, s := range c.states {
		out = append(out, s.copy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
