package slo

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/control/policy"
)

// RuleSource names the generated groups in the rules engine.
const RuleSource = "slo"

// Source is where SLO documents come from: the policy store.
type Source interface {
	// Snapshot returns the version and every document.
	Snapshot() (uint64, []policy.Document)
	// Subscribe returns a channel that receives a value after every new
	// version; it is closed when the source closes.
	Subscribe() <-chan struct{}
}

// Engine is the rules engine the generated groups run in.
type Engine interface {
	SetGenerated(source string, groups []rulefmt.RuleGroup) error
	RuleGroups() []*rules.Group
}

// Manager keeps the generated rules in step with the SLO documents and
// answers the SLO API. Run it as a lifecycle runner.
type Manager struct {
	src       Source
	ruler     Engine
	engine    promql.QueryEngine
	queryable storage.Queryable
	opts      Options
	logger    *slog.Logger
	sub       <-chan struct{}

	mu      sync.RWMutex
	version uint64
	slos    map[string]policy.Document
	errs    map[string]error

	syncs *prometheus.CounterVec
	count prometheus.Gauge
}

// NewManager builds the manager; opts.EvalInterval must be the rules
// engine's. It subscribes to src at once so no change is missed.
func NewManager(src Source, ruler Engine, engine promql.QueryEngine, q storage.Queryable, opts Options, reg prometheus.Registerer, logger *slog.Logger) (*Manager, error) {
	if opts.EvalInterval <= 0 {
		return nil, fmt.Errorf("slo: evaluation interval must be positive")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		src: src, ruler: ruler, engine: engine, queryable: q, opts: opts, logger: logger,
		sub:  src.Subscribe(),
		slos: map[string]policy.Document{},
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_slo_rule_syncs_total",
			Help: "Regenerations of the SLO rules after policy changes, by result.",
		}, []string{"result"}),
		count: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_slos",
			Help: "SLO documents whose rules run in the rules engine.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.syncs, m.count} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("slo: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Sync regenerates the rules from the current SLO documents. An SLO whose
// rules cannot be generated is left out and reported by the API.
func (m *Manager) Sync() error {
	version, docs := m.src.Snapshot()
	slos := map[string]policy.Document{}
	for _, d := range docs {
		if d.Kind == policy.KindSLO && d.SLO() != nil {
			slos[d.Name] = d
		}
	}
	groups, errs := RuleGroups(docs, m.opts)
	if err := m.ruler.SetGenerated(RuleSource, groups); err != nil {
		m.syncs.WithLabelValues("failure").Inc()
		return fmt.Errorf("slo rules of policy version %d: %w", version, err)
	}
	for name, err := range errs {
		m.logger.Error("SLO rules not generated", "slo", name, "err", err)
	}
	m.mu.Lock()
	m.version, m.slos, m.errs = version, slos, errs
	m.mu.Unlock()
	m.syncs.WithLabelValues("success").Inc()
	m.count.Set(float64(len(groups)))
	return nil
}

// Run syncs now and after every policy change until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.Sync(); err != nil {
		m.logger.Error("SLO rules", "err", err)
	}
	sub := m.sub
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-sub:
			if !ok {
				sub = nil // the store closed; wait for ctx
				continue
			}
			if err := m.Sync(); err != nil {
				m.logger.Error("SLO rules", "err", err)
			}
		}
	}
}

// documents returns the SLOs sorted by name.
func (m *Manager) documents() []policy.Document {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]policy.Document, 0, len(m.slos))
	for _, d := range m.slos {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Manager) document(name string) (policy.Document, error, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d, ok := m.slos[name]
	return d, m.errs[name], ok
}
