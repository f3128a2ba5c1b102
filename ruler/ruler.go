package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// generatedPrefix starts the identifier ("file") of generated groups.
const generatedPrefix = "meshscope:"

// EvalHook runs after each evaluation of a rule group, with the group's
// state (its rules' alerts and health) as of that evaluation.
type EvalHook func(ctx context.Context, g *rules.Group, ts time.Time)

// Leadership tells whether this server is the one of the cluster that
// evaluates the rules (several servers over a shared metrics store must not
// each record the same series and send the same alerts).
type Leadership interface {
	IsLeader() bool
}

// alwaysLeader is a single server's leadership.
type alwaysLeader struct{}

func (alwaysLeader) IsLeader() bool { return true }

// Ruler runs rule groups. Create it with New, add hooks with AfterEval,
// then Run it as a lifecycle runner.
type Ruler struct {
	cfg      Config
	logger   *slog.Logger
	parser   parser.Parser
	manager  *rules.Manager
	notifier *notifier.Manager // nil without Alertmanagers
	ctx      context.Context
	cancel   context.CancelFunc

	hooks  []EvalHook // fixed once Run starts
	leader Leadership // fixed once Run starts
	skips  prometheus.Counter

	mu        sync.Mutex // serialises applies
	generated map[string]*rulefmt.RuleGroups
	files     []string // user rule files in use
	loaded    sync.Map // identifier → *rulefmt.RuleGroups, for the loader

	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
}

// New builds the ruler over the server's engine and TSDB and loads the
// rule files; a bad rule file is an error here.
func New(cfg Config, engine promql.QueryEngine, q storage.Queryable, app storage.AppendableV2, reg prometheus.Registerer, logger *slog.Logger) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Ruler{
		cfg:       cfg,
		logger:    logger,
		parser:    parser.NewParser(parser.Options{}),
		ctx:       ctx,
		cancel:    cancel,
		generated: map[string]*rulefmt.RuleGroups{},
		leader:    alwaysLeader{},
		skips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_ruler_evaluations_skipped_not_leader_total",
			Help: "Rule group evaluations skipped because another server of the cluster is the leader.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_ruler_reloads_total",
			Help: "Rule reloads (rule files and generated groups), by result.",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_ruler_last_reload_success_timestamp_seconds",
			Help: "When the rules were last loaded successfully.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{r.reloads, r.lastReload, r.skips} {
			if err := reg.Register(c); err != nil {
				cancel()
				return nil, fmt.Errorf("ruler: registering metrics: %w", err)
			}
		}
	}
	notify := func(context.Context, string, ...*rules.Alert) {}
	if len(cfg.Alertmanagers) > 0 {
		n, err := newNotifier(cfg.Alertmanagers, reg, logger.With("component", "notifier"))
		if err != nil {
			cancel()
			return nil, err
		}
		r.notifier = n
		notify = rules.SendAlerts(n, strings.TrimSuffix(cfg.ExternalURL, "/"))
	}
	r.manager = rules.NewManager(&rules.ManagerOptions{
		ExternalURL:     nil,
		QueryFunc:       rules.EngineQueryFunc(engine, q),
		NotifyFunc:      notify,
		Context:         ctx,
		AppendableV2:    app,
		Queryable:       q,
		Logger:          logger.With("component", "rules"),
		Registerer:      reg,
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     time.Minute,
		GroupLoader:     loader{r},
		Parser:          r.parser,
	})
	if err := r.Reload(); err != nil {
		cancel()
		return nil, err
	}
	return r, nil
}

// AfterEval adds a hook run after every group evaluation. Call it before
// Run.
func (r *Ruler) AfterEval(h EvalHook) { r.hooks = append(r.hooks, h) }

// SetLeadership makes the ruler evaluate (and run the AfterEval hooks) only
// while l says this server leads; by default it always does. Call it
// before Run.
func (r *Ruler) SetLeadership(l Leadership) { r.leader = l }

// Notify sends alerts to the configured Alertmanagers (through the same
// notifier as the rules' alerts); without Alertmanagers it does nothing.
func (r *Ruler) Notify(alerts ...*notifier.Alert) {
	if r.notifier != nil {
		r.notifier.Send(alerts...)
	}
}

// EvalInterval is the default evaluation interval.
func (r *Ruler) EvalInterval() time.Duration { return r.cfg.EvalInterval }

// ExternalURL is the configured external URL ("" when unset).
func (r *Ruler) ExternalURL() string { return r.cfg.ExternalURL }

// RuleGroups returns the running groups, sorted by file and name.
func (r *Ruler) RuleGroups() []*rules.Group {
	gs := r.manager.RuleGroups()
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].File() != gs[j].File() {
			return gs[i].File() < gs[j].File()
		}
		return gs[i].Name() < gs[j].Name()
	})
	return gs
}

// SetGenerated replaces the groups generated by source (e.g. "slo") and
// applies them with the current rule files.
func (r *Ruler) SetGenerated(source string, groups []rulefmt.RuleGroup) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := generatedPrefix + source
	prev, had := r.generated[id]
	if len(groups) == 0 {
		delete(r.generated, id)
	} else {
		r.generated[id] = &rulefmt.RuleGroups{Groups: groups}
	}
	if err := r.applyLocked(r.files); err != nil {
		if had {
			r.generated[id] = prev
		} else {
			delete(r.generated, id)
		}
		return err
	}
	return nil
}

// Reload re-reads the rule files. A file that does not parse or validate
// is refused with its file, line and reason; the previous rules keep
// running.
func (r *Ruler) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	files, err := r.ruleFiles()
	if err == nil {
		err = r.checkFiles(files)
	}
	if err == nil {
		err = r.applyLocked(files)
	}
	if err != nil {
		r.reloads.WithLabelValues("failure").Inc()
		return err
	}
	r.files = files
	r.reloads.WithLabelValues("success").Inc()
	r.lastReload.SetToCurrentTime()
	return nil
}

// ruleFiles expands the globs, sorted and without duplicates.
func (r *Ruler) ruleFiles() ([]string, error) {
	var out []string
	for _, g := range r.cfg.RuleFiles {
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("rule files %q: %w", g, err)
		}
		out = append(out, m...)
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// checkFiles parses every file as the rules engine will; the error names
// the file and, where the parser knows it, the line and column.
func (r *Ruler) checkFiles(files []string) error {
	var errs []error
	seen := map[string]bool{}
	for _, f := range files {
		_, fe := rulefmt.ParseFile(f, false, model.UTF8Validation, r.parser, r.logger)
		for _, e := range fe {
			if msg := flatten(e); !seen[msg] { // a YAML error comes twice
				seen[msg] = true
				errs = append(errs, fmt.Errorf("rule file %s", msg))
			}
		}
	}
	return errors.Join(errs...)
}

// flatten puts a rulefmt or YAML error on one line: "f.yml: 4:9: group ..."
// or "f.yml: yaml: line 4: ...".
func flatten(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// applyLocked hands the generated groups and files to the manager; on error
// the manager keeps the previous groups.
func (r *Ruler) applyLocked(files []string) error {
	ids := make([]string, 0, len(r.generated)+len(files))
	for id, g := range r.generated {
		r.loaded.Store(id, g)
		ids = append(ids, id)
	}
	sort.Strings(ids)
	ids = append(ids, files...)
	iter := func(ctx context.Context, g *rules.Group, ts time.Time) {
		if !r.leader.IsLeader() {
			r.skips.Inc()
			return
		}
		rules.DefaultEvalIterationFunc(ctx, g, ts)
		for _, h := range r.hooks { // fixed before groups run
			h(ctx, g, ts)
		}
	}
	if err := r.manager.Update(r.cfg.EvalInterval, ids, labels.EmptyLabels(), strings.TrimSuffix(r.cfg.ExternalURL, "/"), iter); err != nil {
		return fmt.Errorf("loading rules: %w (see the log)", err)
	}
	return nil
}

// loader gives the manager the generated groups by identifier and parses
// rule files unchanged.
type loader struct{ r *Ruler }

func (l loader) Load(id string, ignoreUnknown bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	if strings.HasPrefix(id, generatedPrefix) {
		if g, ok := l.r.loaded.Load(id); ok {
			return g.(*rulefmt.RuleGroups), nil
		}
		return nil, []error{fmt.Errorf("%s: no generated rules", id)}
	}
	return rulefmt.ParseFile(id, ignoreUnknown, scheme, l.r.parser, l.r.logger)
}

func (l loader) Parse(q string) (parser.Expr, error) { return l.r.parser.ParseExpr(q) }

// RegisterRoutes adds POST /-/reload (Prometheus' lifecycle endpoint).
func (r *Ruler) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := r.Reload(); err != nil {
			r.logger.Error("rule reload refused", "err", err)
			http.Error(w, "failed to reload rules: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("rules reloaded\n"))
	})
}

// Run evaluates the rules and sends alerts until ctx ends; SIGHUP reloads
// the rule files.
func (r *Ruler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if r.notifier != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runNotifier(r.notifier, r.cfg.Alertmanagers)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.manager.Run()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	r.logger.Info("rules engine started", "eval_interval", r.cfg.EvalInterval, "rule_files", len(r.files), "alertmanagers", len(r.cfg.Alertmanagers))
	for {
		select {
		case <-hup:
			if err := r.Reload(); err != nil {
				r.logger.Error("rule reload on SIGHUP refused; previous rules kept", "err", err)
			} else {
				r.logger.Info("rules reloaded on SIGHUP", "rule_files", len(r.files))
			}
		case <-ctx.Done():
			r.manager.Stop()
			r.cancel()
			if r.notifier != nil {
				r.notifier.Stop()
			}
			wg.Wait()
			return nil
		}
	}
}
