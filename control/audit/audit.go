package audit

import (
	"bufio"
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

	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/jsonlog"
)

// Entry is one audited action.
type Entry struct {
	// Seq numbers entries from 1, in order of appending.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Who is the token or user name ("anonymous" without auth, or a
	// controller's name such as "controller:guard").
	Who string `json:"who"`
	// Role and Auth (token, session, none, controller) say how.
	Role string `json:"role,omitempty"`
	Auth string `json:"auth,omitempty"`
	// From is the client's IP address ("" for in-process controllers).
	From string `json:"from,omitempty"`
	// Action is what was done: apply, delete, rollback, token.create,
	// guard.pause, rollout.promote, ...
	Action string `json:"action"`
	// Targets are the changed objects ("Kind/name").
	Targets []string `json:"targets,omitempty"`
	// Version is the policy version the action produced (0 = none).
	Version uint64 `json:"version,omitempty"`
	// Diff is the change as YAML lines prefixed "+ ", "- " or "  ".
	Diff string `json:"diff,omitempty"`
	// Outcome is "ok", or the error that refused the action.
	Outcome string `json:"outcome"`
	// Detail holds action-specific fields (dry_run, reason, ...).
	Detail map[string]string `json:"detail,omitempty"`
}

// Recorder is what mutating code calls; it fills Seq, Time and, from the
// request's auth.Identity in ctx, Who, Role, Auth and From when unset.
type Recorder interface {
	Record(ctx context.Context, e Entry) error
}

// Config configures the log.
type Config struct {
	// Dir holds the segments. Default <data>/audit.
	Dir string `yaml:"dir"`
	// Retention drops segments whose newest entry is older. Default 365d.
	Retention time.Duration `yaml:"retention"`
	// MaxBytes bounds the segments' total size; the oldest go first.
	// Default 256 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes starts a new segment beyond this size. Default 8 MiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
}

// Defaults.
const (
	DefaultRetention    = 365 * 24 * time.Hour
	DefaultMaxBytes     = 256 << 20
	DefaultSegmentBytes = 8 << 20
)

// DefaultConfig returns the defaults (Dir derives from the data dir).
func DefaultConfig() Config {
	return Config{Retention: DefaultRetention, MaxBytes: DefaultMaxBytes, SegmentBytes: DefaultSegmentBytes}
}

// Validate names the bad key.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("dir: must be set")
	case c.Retention <= 0:
		return errors.New("retention: must be positive")
	case c.MaxBytes <= 0:
		return errors.New("max_bytes: must be positive")
	case c.SegmentBytes <= 0 || c.SegmentBytes > c.MaxBytes:
		return errors.New("segment_bytes: must be positive and at most max_bytes")
	}
	return nil
}

const segPrefix, segSuffix = "audit-", ".jsonl"

type segment struct {
	path     string
	firstSeq uint64
	size     int64
	last     time.Time // newest entry
}

// Log is the audit log. Safe for concurrent use.
type Log struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	segs   []segment // oldest first; the last is open
	cur    *jsonlog.File
	seq    uint64
	closed bool

	*metrics
	bytes prometheus.Gauge
}

// metrics are what every audit log counts, on file or shared.
type metrics struct {
	entries  *prometheus.CounterVec
	failures prometheus.Counter
	appendS  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, extra ...prometheus.Collector) (*metrics, error) {
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_audit_entries_total", Help: "Entries appended to the audit log, by outcome (ok, refused).",
		}, []string{"outcome"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_audit_append_failures_total", Help: "Audit entries that could not be written (the action was refused).",
		}),
		appendS: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshscope_audit_append_seconds", Help: "Time to write one audit entry durably (fsync, or an etcd commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	if reg != nil {
		for _, c := range append([]prometheus.Collector{m.entries, m.failures, m.appendS}, extra...) {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("audit: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// appended counts an entry written in d.
func (m *metrics) appended(e *Entry, d time.Duration) {
	m.appendS.Observe(d.Seconds())
	outcome := "ok"
	if e.Outcome != "ok" {
		outcome = "refused"
	}
	m.entries.WithLabelValues(outcome).Inc()
}

// Querier reads the log: the file log (Log) or the cluster's (Shared).
type Querier interface {
	Query(ctx context.Context, f Filter) (Page, error)
}

// prepare fills Who, Role, Auth and From from the request's identity in
// ctx (when unset) and the defaults; an entry without an action is an
// error.
func prepare(ctx context.Context, e *Entry) error {
	if id, ok := auth.FromContext(ctx); ok {
		if e.Who == "" {
			e.Who = id.Name
		}
		if e.Role == "" {
			e.Role = string(id.Role)
		}
		if e.Auth == "" {
			e.Auth = id.Method
		}
		if e.From == "" {
			e.From = id.Addr
		}
	}
	if e.Who == "" {
		e.Who = "unknown"
	}
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	if e.Action == "" {
		return errors.New("audit: entry without an action")
	}
	return nil
}

// Open opens (creating) the log in cfg.Dir. A torn last line is cut off;
// a damaged line elsewhere is an error naming the file and line.
func Open(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit: creating %s: %w", cfg.Dir, err)
	}
	l := &Log{cfg: cfg, logger: logger, now: time.Now,
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_audit_bytes", Help: "Size of the audit log's segments on disk.",
		}),
	}
	m, err := newMetrics(reg, l.bytes)
	if err != nil {
		return nil, err
	}
	l.metrics = m
	names, err := filepath.Glob(filepath.Join(cfg.Dir, segPrefix+"*"+segSuffix))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	sort.Strings(names) // zero-padded first sequence numbers
	for i, name := range names {
		seg := segment{path: name}
		replay := func(lineNo int, line []byte) error {
			var e Entry
			if err := json.Unmarshal(line, &e); err != nil {
				return fmt.Errorf("audit log %s line %d is damaged: %v", name, lineNo, err)
			}
			if seg.firstSeq == 0 {
				seg.firstSeq = e.Seq
			}
			l.seq = max(l.seq, e.Seq)
			seg.last = e.Time
			return nil
		}
		if i < len(names)-1 {
			if err := readLines(name, replay); err != nil {
				return nil, err
			}
			fi, err := os.Stat(name)
			if err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
			seg.size = fi.Size()
		} else {
			f, torn, err := jsonlog.Open(name, replay)
			if err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
			if torn > 0 {
				logger.Warn("cut off an incomplete last line of the audit log", "path", name, "bytes", torn)
			}
			l.cur, seg.size = f, f.Size()
		}
		l.segs = append(l.segs, seg)
	}
	if l.cur == nil {
		if err := l.rotateLocked(); err != nil {
			return nil, err
		}
	}
	l.pruneLocked()
	l.updateBytes()
	logger.Info("audit log open", "dir", cfg.Dir, "entries_seq", l.seq, "segments", len(l.segs))
	return l, nil
}

// readLines calls fn with every complete line of a closed segment.
func readLines(path string, fn func(int, []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if ferr := fn(n, line); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return nil // EOF; a torn tail of an old segment holds nothing acknowledged
		}
	}
}

func (l *Log) rotateLocked() error {
	if l.cur != nil {
		if err := l.cur.Close(); err != nil {
			return fmt.Errorf("audit: closing segment: %w", err)
		}
	}
	name := filepath.Join(l.cfg.Dir, fmt.Sprintf("%s%020d%s", segPrefix, l.seq+1, segSuffix))
	f, _, err := jsonlog.Open(name, nil)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	l.cur = f
	l.segs = append(l.segs, segment{path: name, firstSeq: l.seq + 1})
	return nil
}

// prune drops the oldest closed segments beyond retention or size.
func (l *Log) pruneLocked() {
	now := l.now()
	total := int64(0)
	for _, s := range l.segs {
		total += s.size
	}
	for len(l.segs) > 1 {
		s := l.segs[0]
		old := !s.last.IsZero() && now.Sub(s.last) > l.cfg.Retention
		if !old && total <= l.cfg.MaxBytes {
			break
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("audit: removing an old segment", "path", s.path, "err", err)
			break
		}
		l.logger.Info("audit: dropped a segment by retention", "path", s.path, "bytes", s.size, "newest", s.last)
		total -= s.size
		l.segs = l.segs[1:]
	}
}

func (l *Log) updateBytes() {
	total := int64(0)
	for _, s := range l.segs {
		total += s.size
	}
	l.bytes.Set(float64(total))
}

// Record appends e durably (fsync'd before it returns).
func (l *Log) Record(ctx context.Context, e Entry) error {
	if err := prepare(ctx, &e); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.failures.Inc()
		return errors.New("audit log is closed")
	}
	e.Seq = l.seq + 1
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	if l.cur.Size() >= l.cfg.SegmentBytes {
		if err := l.rotateLocked(); err != nil {
			l.failures.Inc()
			return err
		}
		l.pruneLocked()
	}
	start := time.Now()
	if err := l.cur.Append(e); err != nil {
		l.failures.Inc()
		return fmt.Errorf("audit: %w", err)
	}
	l.appended(&e, time.Since(start))
	l.seq = e.Seq
	seg := &l.segs[len(l.segs)-1]
	seg.size, seg.last = l.cur.Size(), e.Time
	if seg.firstSeq == 0 {
		seg.firstSeq = e.Seq
	}
	l.updateBytes()
	return nil
}

// Close closes the open segment.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.cur.Close()
}

// Filter selects entries; zero fields match everything.
type Filter struct {
	Who    string
	Action string // exact, or a prefix ending in "." (guard.)
	Target string // substring of a target
	Since  time.Time
	Until  time.Time
	// Before pages backwards: only entries with Seq < Before.
	Before uint64
	// Limit caps the answer (default 100, at most 1000).
	Limit int
}

func (f Filter) match(e *Entry) bool {
	if f.Who != "" && e.Who != f.Who {
		return false
	}
	if f.Action != "" && e.Action != f.Action && !(strings.HasSuffix(f.Action, ".") && strings.HasPrefix(e.Action, f.Action)) {
		return false
	}
	if f.Target != "" {
		hit := false
		for _, t := range e.Targets {
			if strings.Contains(t, f.Target) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && e.Time.After(f.Until) {
		return false
	}
	return f.Before == 0 || e.Seq < f.Before
}

// limited applies the default and the cap to Limit.
func (f Filter) limited() Filter {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	return f
}

// Page is an answer to Query: newest first.
type Page struct {
	Entries []Entry `json:"entries"`
	// NextBefore continues the listing (?before=); 0 at the end.
	NextBefore uint64 `json:"next_before,omitempty"`
}

// Query reads matching entries, newest first.
func (l *Log) Query(_ context.Context, f Filter) (Page, error) {
	f = f.limited()
	l.mu.Lock()
	segs := append([]segment(nil), l.segs...)
	l.mu.Unlock()
	page := Page{Entries: []Entry{}}
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if f.Before != 0 && s.firstSeq >= f.Before {
			continue
		}
		var hits []Entry
		err := readLines(s.path, func(_ int, line []byte) error {
			var e Entry
			if json.Unmarshal(line, &e) == nil && f.match(&e) {
				hits = append(hits, e)
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // pruned meanwhile
			}
			return Page{}, err
		}
		for j := len(hits) - 1; j >= 0; j-- {
			if len(page.Entries) == f.Limit {
				page.NextBefore = page.Entries[len(page.Entries)-1].Seq
				return page, nil
			}
			page.Entries = append(page.Entries, hits[j])
		}
	}
	return page, nil
}
