package metricstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// Config configures the metrics store.
type Config struct {
	// Store is "embedded" (default: Prometheus' TSDB in Dir) or "remote"
	// (a shared Prometheus-compatible store, see Remote; Dir then holds the
	// remote-write WAL).
	Store string `yaml:"store"`
	// Remote configures the shared store when Store is "remote".
	Remote RemoteConfig `yaml:"remote"`
	// Dir is the TSDB directory; the server uses <data>/metrics. Required.
	Dir string `yaml:"dir"`
	// Retention drops blocks older than this. Default 15d (Prometheus'
	// default). Unit: duration.
	Retention time.Duration `yaml:"retention"`
	// MaxBytes caps the TSDB's size on disk; 0 = no cap (default). Unit: bytes.
	MaxBytes int64 `yaml:"max_bytes"`
	// OutOfOrderWindow accepts samples up to this much older than a series'
	// newest sample (senders that retry or restart). Default 10m. Unit: duration.
	OutOfOrderWindow time.Duration `yaml:"out_of_order_window"`
}

// DefaultRetention is the retention when Config.Retention is 0.
const DefaultRetention = 15 * 24 * time.Hour

// DefaultOutOfOrderWindow is the out-of-order window when Config.OutOfOrderWindow is 0.
const DefaultOutOfOrderWindow = 10 * time.Minute

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch c.Store {
	case "", StoreEmbedded:
	case StoreRemote:
		if err := c.Remote.Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("metrics.store (--metrics-store): %q is not one of embedded, remote", c.Store)
	}
	switch {
	case c.Dir == "":
		return errors.New("metrics.dir: must be set")
	case c.Retention < 0:
		return fmt.Errorf("metrics.retention: %v must not be negative", c.Retention)
	case c.Retention > 0 && c.Retention < time.Minute:
		return fmt.Errorf("metrics.retention: %v is below the minimum of 1m", c.Retention)
	case c.MaxBytes < 0:
		return fmt.Errorf("metrics.max_bytes: %d must not be negative", c.MaxBytes)
	case c.OutOfOrderWindow < 0:
		return fmt.Errorf("metrics.out_of_order_window: %v must not be negative", c.OutOfOrderWindow)
	}
	return nil
}

// Store is the open TSDB. It embeds *tsdb.DB, so it is a storage.Appendable,
// storage.AppendableV2 and storage.Queryable (what promql.Engine queries).
// Its AppenderV2 also records the metric metadata the samples carry (OTLP,
// remote write 2.0); SetMetadata takes remote write 1.0's, and
// MetricMetadata serves them (/api/v1/metadata).
type Store struct {
	*tsdb.DB
	meta   *metadataStore
	logger *slog.Logger
}

// AppenderV2 returns the TSDB's appender, recording on commit the metadata
// passed with the samples (AppendV2Options.Metadata) per metric family.
func (s *Store) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &metaAppender{next: s.DB.AppenderV2(ctx), meta: s}
}

// SetMetadata records a metric family's metadata (type, unit, help).
func (s *Store) SetMetadata(family string, md metadata.Metadata) {
	if err := s.meta.set(family, md); err != nil {
		s.logger.Warn("saving metric metadata failed", "err", err)
	}
}

// MetricMetadata returns the recorded metadata by metric family.
func (s *Store) MetricMetadata() map[string]metadata.Metadata { return s.meta.all() }

// Close saves the metadata and closes the TSDB.
func (s *Store) Close() error {
	merr := s.meta.save()
	if err := s.DB.Close(); err != nil {
		return err
	}
	return merr
}

// metadataSetter records a metric family's metadata (the embedded and the
// remote store).
type metadataSetter interface {
	SetMetadata(family string, md metadata.Metadata)
}

// metaAppender stages the metadata of appended samples until Commit.
type metaAppender struct {
	next   storage.AppenderV2
	meta   metadataSetter
	staged map[string]metadata.Metadata
}

func (a *metaAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r, err := a.next.Append(ref, ls, st, t, v, h, fh, opts)
	if !opts.Metadata.IsEmpty() {
		family := opts.MetricFamilyName
		if family == "" {
			family = familyOf(ls.Get(labels.MetricName), opts.Metadata.Type)
		}
		if old, ok := a.staged[family]; !ok || old != opts.Metadata {
			if a.staged == nil {
				a.staged = map[string]metadata.Metadata{}
			}
			a.staged[family] = opts.Metadata
		}
	}
	return r, err
}

// AppendExemplars passes exemplars to the TSDB (remote write needs it).
func (a *metaAppender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ea, ok := a.next.(storage.ExemplarAppenderV2)
	if !ok {
		return ref, fmt.Errorf("exemplars not stored: %T does not append exemplars", a.next)
	}
	return ea.AppendExemplars(ref, ls, es)
}

func (a *metaAppender) Commit() error {
	if err := a.next.Commit(); err != nil {
		return err
	}
	for family, md := range a.staged {
		a.meta.SetMetadata(family, md)
	}
	return nil
}

func (a *metaAppender) Rollback() error { return a.next.Rollback() }

// New opens (or creates) the TSDB in cfg.Dir. Its own metrics (prometheus_tsdb_*)
// go to reg.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.OutOfOrderWindow == 0 {
		cfg.OutOfOrderWindow = DefaultOutOfOrderWindow
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	opts.MaxBytes = cfg.MaxBytes
	opts.OutOfOrderTimeWindow = cfg.OutOfOrderWindow.Milliseconds()
	// Blocks cover 2h (the default) unless retention is shorter.
	if d := cfg.Retention.Milliseconds() / 2; d < opts.MinBlockDuration {
		opts.MinBlockDuration, opts.MaxBlockDuration = d, d
	}
	db, err := tsdb.Open(cfg.Dir, logger.With("component", "tsdb"), reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open metrics TSDB in %s: %w", cfg.Dir, err)
	}
	meta, err := openMetadata(cfg.Dir, DefaultMaxMetadata)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{DB: db, meta: meta, logger: logger}, nil
}
