package metricstore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// SelfMetricsConfig configures the self-metrics appender.
type SelfMetricsConfig struct {
	// Interval between gathers. Default 15s. Unit: duration.
	Interval time.Duration `yaml:"interval"`
	// Job and Instance are the job/instance labels of the appended series.
	// Defaults "meshscope" and "server".
	Job      string `yaml:"job"`
	Instance string `yaml:"instance"`
}

// SelfMetrics periodically gathers a registry and appends every sample to a
// storage.Appendable, as if the server scraped its own /metrics. It
// implements lifecycle.Runner.
type SelfMetrics struct {
	cfg    SelfMetricsConfig
	g      prometheus.Gatherer
	app    storage.Appendable
	logger *slog.Logger
	now    func() time.Time
}

// NewSelfMetrics returns the appender. g is usually the server's registry
// and app the metrics Store.
func NewSelfMetrics(cfg SelfMetricsConfig, g prometheus.Gatherer, app storage.Appendable, logger *slog.Logger) (*SelfMetrics, error) {
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("self_metrics.interval: %v must not be negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Job == "" {
		cfg.Job = "meshscope"
	}
	if cfg.Instance == "" {
		cfg.Instance = "server"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SelfMetrics{cfg: cfg, g: g, app: app, logger: logger, now: time.Now}, nil
}

// Run appends once at start, then every interval, until ctx is cancelled.
func (s *SelfMetrics) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.AppendOnce(ctx); err != nil {
			s.logger.Warn("self-metrics append failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// AppendOnce gathers and appends one set of samples stamped now.
func (s *SelfMetrics) AppendOnce(ctx context.Context) error {
	mfs, err := s.g.Gather()
	if err != nil && len(mfs) == 0 {
		return fmt.Errorf("gather: %w", err)
	}
	ts := s.now().UnixMilli()
	app := s.app.Appender(ctx)
	b := labels.NewScratchBuilder(8)
	var appendErr error
	add := func(name string, base []*dto.LabelPair, extraName, extraValue string, v float64) {
		b.Reset()
		b.Add(labels.MetricName, name)
		b.Add("job", s.cfg.Job)
		b.Add("instance", s.cfg.Instance)
		for _, lp := range base {
			if n := lp.GetName(); n != "job" && n != "instance" {
				b.Add(n, lp.GetValue())
			}
		}
		if extraName != "" {
			b.Add(extraName, extraValue)
		}
		b.Sort()
		if _, err := app.Append(0, b.Labels(), ts, v); err != nil && appendErr == nil {
			// Keep going: one bad series must not cost the others.
			appendErr = fmt.Errorf("append %s: %w", name, err)
		}
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			lps := m.GetLabel()
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, lps, "", "", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, lps, "", "", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, lps, "", "", m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					add(name, lps, "quantile", formatFloat(q.GetQuantile()), q.GetValue())
				}
				add(name+"_sum", lps, "", "", sm.GetSampleSum())
				add(name+"_count", lps, "", "", float64(sm.GetSampleCount()))
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, bk := range h.GetBucket() {
					if math.IsInf(bk.GetUpperBound(), 1) {
						inf = true
					}
					add(name+"_bucket", lps, "le", formatFloat(bk.GetUpperBound()), float64(bk.GetCumulativeCount()))
				}
				if !inf {
					add(name+"_bucket", lps, "le", "+Inf", float64(h.GetSampleCount()))
				}
				add(name+"_sum", lps, "", "", h.GetSampleSum())
				add(name+"_count", lps, "", "", float64(h.GetSampleCount()))
			}
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit self-metrics: %w", err)
	}
	// The server's own metrics are described like any sender's.
	if ms, ok := s.app.(interface {
		SetMetadata(string, metadata.Metadata)
	}); ok {
		for _, mf := range mfs {
			ms.SetMetadata(mf.GetName(), metadata.Metadata{Type: selfMetricType[mf.GetType()], Help: mf.GetHelp()})
		}
	}
	return appendErr
}

var selfMetricType = map[dto.MetricType]model.MetricType{
	dto.MetricType_COUNTER:         model.MetricTypeCounter,
	dto.MetricType_GAUGE:           model.MetricTypeGauge,
	dto.MetricType_SUMMARY:         model.MetricTypeSummary,
	dto.MetricType_HISTOGRAM:       model.MetricTypeHistogram,
	dto.MetricType_GAUGE_HISTOGRAM: model.MetricTypeGaugeHistogram,
	dto.MetricType_UNTYPED:         model.MetricTypeUnknown,
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
