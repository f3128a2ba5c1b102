package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/jsonlog"
	"github.com/meshscope/meshscope/control/policy"
)

// LogFile is the name of the log in the store's directory.
const LogFile = "policies.log"

// Operations of a change.
const (
	OpCreate    = "create"
	OpUpdate    = "update"
	OpDelete    = "delete"
	OpUnchanged = "unchanged"
)

// Actions of a history entry.
const (
	ActionApply    = "apply"
	ActionDelete   = "delete"
	ActionRollback = "rollback"
	ActionSync     = "sync"  // the watched policy directory
	ActionGuard    = "guard" // a guard's action or its revert
)

// SourceAPI owns documents applied through the API.
const SourceAPI = "api"

// Change is one document's change in a version.
type Change struct {
	Op      string `json:"op"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Service string `json:"service"`
	// Source owns the document after the change: "api" or the file it
	// was loaded from.
	Source string           `json:"source,omitempty"`
	Before *policy.Document `json:"before,omitempty"`
	After  *policy.Document `json:"after,omitempty"`
}

// Key is the changed document's key.
func (c *Change) Key() policy.Key { return policy.Key{Kind: c.Kind, Name: c.Name} }

// Entry is one version in the history.
type Entry struct {
	Version uint64    `json:"version"`
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Action  string    `json:"action"`
	// RollbackTo is the version a rollback restored.
	RollbackTo uint64   `json:"rollback_to,omitempty"`
	Changes    []Change `json:"changes"`
}

// Result answers a change: the version after it and what changed.
type Result struct {
	// Version is the new version, or the current one when nothing changed
	// or on a dry run.
	Version uint64 `json:"version"`
	// Changed reports whether a new version was written.
	Changed bool `json:"changed"`
	DryRun  bool `json:"dry_run,omitempty"`
	// Changes lists every document given (unchanged ones too) and every
	// document deleted.
	Changes []Change `json:"changes"`
}

// ConflictError is a change to a document another source owns.
type ConflictError struct {
	Key    policy.Key
	Source string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is managed by %s; change it there", e.Key, e.Source)
}

// NotFoundError is a reference to a document or version that does not exist.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " not found" }

// ValidationError is a set of documents that is not valid together.
type ValidationError struct{ Err error }

func (e *ValidationError) Error() string { return e.Err.Error() }
func (e *ValidationError) Unwrap() error { return e.Err }

// Log is the store's append-only log of versions, one JSON value each:
// the local policies.log (*jsonlog.File) or a SharedLog.
type Log interface {
	Append(v any) error
	Close() error
}

// SharedLog is a Log several servers append to (control/etcdstate). Its
// Append answers an error wrapping ErrStale when another server wrote the
// next version first; the store then catches up and tries again.
type SharedLog interface {
	Log
	// Since returns the lines after the first n, oldest first; the next
	// Append writes line n+len(lines)+1.
	Since(ctx context.Context, n uint64) ([][]byte, error)
	// Changed receives a value after lines were appended by anyone
	// (coalesced). Close closes it.
	Changed() <-chan struct{}
}

// ErrStale is a shared log's answer to an Append of a version another
// server wrote first.
var ErrStale = errors.New("another server wrote this version first")

// maxStaleRetries bounds the catch-up-and-retry loop of one change.
const maxStaleRetries = 20

// catchUpTimeout bounds one read of a shared log.
const catchUpTimeout = 10 * time.Second

type stored struct {
	doc    policy.Document
	source string
}

// Store is the durable, versioned policy set. It is safe for concurrent use.
type Store struct {
	logger *slog.Logger
	path   string

	mu      sync.RWMutex
	log     Log
	shared  SharedLog     // nil for the local log
	follow  chan struct{} // closed when the shared log's follower ends
	version uint64
	docs    map[policy.Key]stored
	history []Entry
	subs    []chan struct{}
	closed  bool

	versionGauge prometheus.Gauge
	docsGauge    prometheus.Gauge
	applies      *prometheus.CounterVec
	fsyncSeconds prometheus.Histogram
}

// Open opens (creating it if needed) the store in dir and replays its log.
// A torn last line (a crash mid-write, never acknowledged) is cut off; any
// other damage is an error naming the line.
func Open(dir string, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating policy store directory: %w", err)
	}
	s, err := newStore(filepath.Join(dir, LogFile), reg, logger)
	if err != nil {
		return nil, err
	}
	f, torn, err := jsonlog.Open(s.path, s.replayLine)
	if err != nil {
		return nil, fmt.Errorf("policy log: %w", err)
	}
	if torn > 0 {
		// A torn last write: it was never acknowledged.
		logger.Warn("cut off an incomplete last line of the policy log", "path", s.path, "bytes", torn)
	}
	s.log = f
	s.opened()
	return s, nil
}

// OpenShared opens the store over a log shared with other servers (where
// names it in messages): it replays the log, then follows what others
// append until Close.
func OpenShared(log SharedLog, where string, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	s, err := newStore(where, reg, logger)
	if err != nil {
		return nil, err
	}
	s.log, s.shared, s.follow = log, log, make(chan struct{})
	if err := s.catchUpLocked(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("policy log: %w", err)
	}
	go s.followShared()
	s.opened()
	return s, nil
}

func newStore(path string, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	s := &Store{
		logger: logger,
		path:   path,
		docs:   map[policy.Key]stored{},
		versionGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_control_policy_version", Help: "Current version of the policy store.",
		}),
		docsGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_control_policies", Help: "Policy documents in the store.",
		}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_control_policy_changes_total", Help: "Versions written to the policy store, by action.",
		}, []string{"action"}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mesh_control_policy_fsync_seconds", Help: "Time to write and fsync one version of the policy log.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	for _, c := range []prometheus.Collector{s.versionGauge, s.docsGauge, s.applies, s.fsyncSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering policy store metrics: %w", err)
		}
	}
	return s, nil
}

func (s *Store) opened() {
	s.versionGauge.Set(float64(s.version))
	s.docsGauge.Set(float64(len(s.docs)))
	s.logger.Info("policy store open", "path", s.path, "version", s.version, "policies", len(s.docs))
}

// catchUpLocked replays what other servers appended to the shared log
// and tells subscribers. s.mu is held (or the store is not shared yet).
func (s *Store) catchUpLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
	defer cancel()
	lines, err := s.shared.Since(ctx, s.version)
	if err != nil {
		return fmt.Errorf("reading %s after version %d: %w", s.path, s.version, err)
	}
	for _, line := range lines {
		if err := s.replayLine(int(s.version)+1, line); err != nil {
			return err
		}
	}
	if len(lines) > 0 {
		s.versionGauge.Set(float64(s.version))
		s.docsGauge.Set(float64(len(s.docs)))
		s.notify()
	}
	return nil
}

// followShared catches up after every append to the shared log until
// the log is closed.
func (s *Store) followShared() {
	defer close(s.follow)
	for range s.shared.Changed() {
		s.mu.Lock()
		if !s.closed {
			if err := s.catchUpLocked(); err != nil {
				s.logger.Error("following the shared policy log", "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// change runs fn under the write lock; when another server wrote the
// version fn tried to write, it catches up and runs fn again.
func (s *Store) change(fn func() (Result, error)) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		res, err := fn()
		if s.shared == nil || !errors.Is(err, ErrStale) || attempt == maxStaleRetries {
			return res, err
		}
		if err := s.catchUpLocked(); err != nil {
			return Result{}, err
		}
	}
}

// replayLine applies one line of the log on open.
func (s *Store) replayLine(lineNo int, line []byte) error {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("policy log %s line %d is damaged (%v); the store will not start over a damaged log", s.path, lineNo, err)
	}
	if e.Version != s.version+1 {
		return fmt.Errorf("policy log %s line %d: version %d follows %d", s.path, lineNo, e.Version, s.version)
	}
	s.commit(e)
	return nil
}

// commit applies e to memory. s.mu is held (or the store is not shared yet).
func (s *Store) commit(e Entry) {
	applyChanges(s.docs, e.Changes)
	s.version = e.Version
	s.history = append(s.history, e)
}

// applyChanges applies a version's changes to a document set.
func applyChanges(docs map[policy.Key]stored, changes []Change) {
	for _, c := range changes {
		switch c.Op {
		case OpCreate, OpUpdate:
			if c.After != nil {
				src := c.Source
				if src == "" {
					src = SourceAPI
				}
				docs[c.Key()] = stored{*c.After, src}
			}
		case OpDelete:
			delete(docs, c.Key())
		}
	}
}

// write appends e to the log and fsyncs it. s.mu is held.
func (s *Store) write(e Entry) error {
	if s.closed {
		return errors.New("policy store is closed")
	}
	start := time.Now()
	if err := s.log.Append(e); err != nil {
		return fmt.Errorf("policy log version %d: %w", e.Version, err)
	}
	s.fsyncSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// Close closes the log (and stops following a shared one).
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, c := range s.subs {
		close(c)
	}
	s.subs = nil
	s.mu.Unlock()
	err := s.log.Close()
	if s.follow != nil {
		<-s.follow
	}
	return err
}

// Subscribe returns a channel that receives a value after every new
// version (coalesced: one pending value at most). It is closed by Close.
func (s *Store) Subscribe() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(chan struct{}, 1)
	if s.closed {
		close(c)
		return c
	}
	s.subs = append(s.subs, c)
	return c
}

func (s *Store) notify() {
	for _, c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Version is the current version (0 before the first change).
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Snapshot returns the version and every document, sorted by kind and name.
func (s *Store) Snapshot() (uint64, []policy.Document) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version, s.listLocked("", "")
}

// Item is a document and the source that owns it.
type Item struct {
	policy.Document
	Source string
}

// List returns the documents of kind and service ("" = any), sorted by
// kind and name, with their sources.
func (s *Store) List(kind, service string) (uint64, []Item) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Item
	for _, st := range s.docs {
		if matches(&st.doc, kind, service) {
			out = append(out, Item{st.doc, st.source})
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(&out[i].Document, &out[j].Document) })
	return s.version, out
}

func matches(d *policy.Document, kind, service string) bool {
	return (kind == "" || d.Kind == kind) && (service == "" || d.Service == service)
}

func less(a, b *policy.Document) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

func (s *Store) listLocked(kind, service string) []policy.Document {
	out := make([]policy.Document, 0, len(s.docs))
	for _, st := range s.docs {
		if matches(&st.doc, kind, service) {
			out = append(out, st.doc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(&out[i], &out[j]) })
	return out
}

// Get returns one document and its source.
func (s *Store) Get(key policy.Key) (Item, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.docs[key]
	return Item{st.doc, st.source}, ok
}

// History returns the entries after version since (0 = all), oldest
// first, at most limit of the newest (0 = no limit).
func (s *Store) History(since uint64, limit int) []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h := s.history
	if since > 0 && since < uint64(len(h)) {
		h = h[since:]
	} else if since >= uint64(len(h)) {
		h = nil
	}
	if limit > 0 && len(h) > limit {
		h = h[len(h)-limit:]
	}
	return append([]Entry(nil), h...)
}

// ApplyOptions says who applies and how.
type ApplyOptions struct {
	Who    string
	DryRun bool
	// Source owns the applied documents: SourceAPI or a file path.
	Source string
}

// Apply creates or replaces the given documents (validated, defaults
// filled: as policy.Load returns them) and leaves the others alone. It
// writes a new version only when something changed.
func (s *Store) Apply(docs []policy.Document, opts ApplyOptions) (Result, error) {
	if opts.Source == "" {
		opts.Source = SourceAPI
	}
	return s.change(func() (Result, error) {
		if err := policy.CheckSet(docs); err != nil {
			return Result{}, &ValidationError{err}
		}
		var changes []Change
		for i := range docs {
			d := docs[i]
			if err := d.Validate(); err != nil {
				return Result{}, &ValidationError{err}
			}
			old, exists := s.docs[d.Key()]
			if exists && old.source != opts.Source {
				return Result{}, &ConflictError{d.Key(), old.source}
			}
			c := Change{Kind: d.Kind, Name: d.Name, Service: d.Service, Source: opts.Source, After: &d}
			switch {
			case !exists:
				c.Op = OpCreate
			case policy.Equal(&old.doc, &d):
				c.Op = OpUnchanged
				c.After = nil
			default:
				c.Op = OpUpdate
				before := old.doc
				c.Before = &before
			}
			changes = append(changes, c)
		}
		return s.record(ActionApply, 0, changes, opts)
	})
}

// Sync makes the documents owned by sources starting with prefix exactly
// items, in one version: given ones are created or replaced (taking them
// over from the API if needed: files win), and documents of such sources
// not given are deleted.
func (s *Store) Sync(prefix string, items []Item, opts ApplyOptions) (Result, error) {
	return s.change(func() (Result, error) {
		docs := make([]policy.Document, len(items))
		for i := range items {
			if !strings.HasPrefix(items[i].Source, prefix) {
				return Result{}, fmt.Errorf("sync: source %q is not below %q", items[i].Source, prefix)
			}
			docs[i] = items[i].Document
		}
		if err := policy.CheckSet(docs); err != nil {
			return Result{}, &ValidationError{err}
		}
		var changes []Change
		given := map[policy.Key]bool{}
		for i := range items {
			d, src := items[i].Document, items[i].Source
			if err := d.Validate(); err != nil {
				return Result{}, &ValidationError{fmt.Errorf("%s: %w", src, err)}
			}
			given[d.Key()] = true
			old, exists := s.docs[d.Key()]
			c := Change{Kind: d.Kind, Name: d.Name, Service: d.Service, Source: src, After: &d}
			switch {
			case !exists:
				c.Op = OpCreate
			case policy.Equal(&old.doc, &d) && old.source == src:
				continue
			default:
				c.Op = OpUpdate
				before := old.doc
				c.Before = &before
			}
			changes = append(changes, c)
		}
		for _, st := range s.sortedLocked() {
			if strings.HasPrefix(st.source, prefix) && !given[st.doc.Key()] {
				before := st.doc
				changes = append(changes, Change{Op: OpDelete, Kind: before.Kind, Name: before.Name, Service: before.Service, Before: &before})
			}
		}
		return s.record(ActionSync, 0, changes, opts)
	})
}

// SourceDocs returns the keys of the documents a source owns.
func (s *Store) SourceDocs(source string) []policy.Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []policy.Key
	for k, st := range s.docs {
		if st.source == source {
			out = append(out, k)
		}
	}
	return out
}

func (s *Store) sortedLocked() []stored {
	out := make([]stored, 0, len(s.docs))
	for _, st := range s.docs {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return less(&out[i].doc, &out[j].doc) })
	return out
}

// Delete removes one document.
func (s *Store) Delete(key policy.Key, opts ApplyOptions) (Result, error) {
	if opts.Source == "" {
		opts.Source = SourceAPI
	}
	return s.change(func() (Result, error) {
		old, ok := s.docs[key]
		if !ok {
			return Result{}, &NotFoundError{key.String()}
		}
		if old.source != opts.Source {
			return Result{}, &ConflictError{key, old.source}
		}
		before := old.doc
		return s.record(ActionDelete, 0, []Change{{Op: OpDelete, Kind: key.Kind, Name: key.Name, Service: before.Service, Before: &before}}, opts)
	})
}

// Rollback writes a new version whose documents equal those of version.
// Documents owned by a policy file are left to the file.
func (s *Store) Rollback(version uint64, opts ApplyOptions) (Result, error) {
	return s.change(func() (Result, error) {
		if version == 0 || version > s.version {
			return Result{}, &NotFoundError{fmt.Sprintf("version %d (the store is at %d)", version, s.version)}
		}
		// Replay the history up to version.
		then := map[policy.Key]stored{}
		for _, e := range s.history[:version] {
			applyChanges(then, e.Changes)
		}
		var changes []Change
		for _, st := range s.sortedLocked() {
			old, existed := then[st.doc.Key()]
			switch {
			case !existed:
				if st.source != SourceAPI {
					return Result{}, &ConflictError{st.doc.Key(), st.source}
				}
				before := st.doc
				changes = append(changes, Change{Op: OpDelete, Kind: before.Kind, Name: before.Name, Service: before.Service, Before: &before})
			case !policy.Equal(&old.doc, &st.doc):
				if st.source != SourceAPI {
					return Result{}, &ConflictError{st.doc.Key(), st.source}
				}
				before, after := st.doc, old.doc
				changes = append(changes, Change{Op: OpUpdate, Kind: after.Kind, Name: after.Name, Service: after.Service, Source: SourceAPI, Before: &before, After: &after})
			}
		}
		keys := make([]policy.Key, 0, len(then))
		for k := range then {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].Kind != keys[j].Kind {
				return keys[i].Kind < keys[j].Kind
			}
			return keys[i].Name < keys[j].Name
		})
		var restored []policy.Document
		for _, k := range keys {
			if _, now := s.docs[k]; !now {
				after := then[k].doc
				changes = append(changes, Change{Op: OpCreate, Kind: after.Kind, Name: after.Name, Service: after.Service, Source: SourceAPI, After: &after})
			}
			restored = append(restored, then[k].doc)
		}
		if err := policy.CheckSet(restored); err != nil {
			return Result{}, &ValidationError{err}
		}
		opts.Source = SourceAPI
		return s.record(ActionRollback, version, changes, opts)
	})
}

// Put is one compare-and-swap change of CompareAndPut.
type Put struct {
	Key policy.Key
	// Expect is what the document must be now; nil = it must not exist.
	Expect *policy.Document
	// After is what it becomes; nil = it is deleted.
	After *policy.Document
}

// StaleError is a CompareAndPut whose expectation no longer holds: the
// document changed since it was read.
type StaleError struct{ Key policy.Key }

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s changed since it was read; not overwritten", e.Key)
}

// CompareAndPut writes puts in one version (action opts.Action, default
// guard) if every document is still what its Expect says; otherwise it
// writes nothing and answers a *StaleError. Documents owned by a policy
// file are not changed (*ConflictError).
func (s *Store) CompareAndPut(puts []Put, action string, opts ApplyOptions) (Result, error) {
	if action == "" {
		action = ActionGuard
	}
	return s.change(func() (Result, error) {
		var changes []Change
		for _, p := range puts {
			cur, exists := s.docs[p.Key]
			switch {
			case p.Expect == nil && exists, p.Expect != nil && (!exists || !policy.Equal(&cur.doc, p.Expect)):
				return Result{}, &StaleError{p.Key}
			case exists && cur.source != SourceAPI:
				return Result{}, &ConflictError{p.Key, cur.source}
			}
			if p.After != nil {
				if p.After.Key() != p.Key {
					return Result{}, fmt.Errorf("put %s: document is %s", p.Key, p.After.Key())
				}
				if err := p.After.Validate(); err != nil {
					return Result{}, &ValidationError{err}
				}
			}
			switch {
			case p.After == nil && !exists:
				continue
			case p.After == nil:
				before := cur.doc
				changes = append(changes, Change{Op: OpDelete, Kind: p.Key.Kind, Name: p.Key.Name, Service: before.Service, Before: &before})
			case !exists:
				after := *p.After
				changes = append(changes, Change{Op: OpCreate, Kind: after.Kind, Name: after.Name, Service: after.Service, Source: SourceAPI, After: &after})
			case policy.Equal(&cur.doc, p.After):
				continue
			default:
				before, after := cur.doc, *p.After
				changes = append(changes, Change{Op: OpUpdate, Kind: after.Kind, Name: after.Name, Service: after.Service, Source: SourceAPI, Before: &before, After: &after})
			}
		}
		return s.record(action, 0, changes, opts)
	})
}

// record writes a version holding changes (unless none changes anything
// or it is a dry run) and answers. s.mu is held.
func (s *Store) record(action string, rollbackTo uint64, changes []Change, opts ApplyOptions) (Result, error) {
	var real []Change
	for _, c := range changes {
		if c.Op != OpUnchanged {
			real = append(real, c)
		}
	}
	res := Result{Version: s.version, DryRun: opts.DryRun, Changes: changes}
	if res.Changes == nil {
		res.Changes = []Change{}
	}
	if len(real) == 0 {
		return res, nil
	}
	// The set after the change must hold together (one route per service).
	after := map[policy.Key]policy.Document{}
	for k, st := range s.docs {
		after[k] = st.doc
	}
	for _, c := range real {
		if c.Op == OpDelete {
			delete(after, c.Key())
		} else {
			after[c.Key()] = *c.After
		}
	}
	all := make([]policy.Document, 0, len(after))
	for _, d := range after {
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return less(&all[i], &all[j]) })
	if err := policy.CheckSet(all); err != nil {
		return Result{}, &ValidationError{err}
	}
	if opts.DryRun {
		return res, nil
	}
	e := Entry{Version: s.version + 1, Time: time.Now().UTC(), Who: opts.Who, Action: action, RollbackTo: rollbackTo, Changes: real}
	if err := s.write(e); err != nil {
		return Result{}, err
	}
	s.commit(e)
	s.applies.WithLabelValues(action).Inc()
	s.versionGauge.Set(float64(s.version))
	s.docsGauge.Set(float64(len(s.docs)))
	s.notify()
	s.logger.Info("policies changed", "version", e.Version, "action", action, "who", opts.Who, "changes", len(real))
	res.Version, res.Changed = e.Version, true
	return res, nil
}
