package metricstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
)

// Config configures the metrics TSDB.
type Config struct {
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
type Store struct {
	*tsdb.DB
}

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
	return &Store{DB: db}, nil
}
