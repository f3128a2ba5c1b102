package otlp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// MetricsWriter appends OTLP metrics to a Prometheus storage with
// Prometheus' own OTLP translator and its default settings
// (UnderscoreEscapingWithSuffixes: `_total`, unit and `_bucket`/`_sum`/`_count`
// suffixes; job and instance from service.namespace/service.name and
// service.instance.id; other resource attributes in target_info).
type MetricsWriter struct {
	app      storage.AppendableV2
	settings prw.Settings
	logger   *slog.Logger
	pool     sync.Pool
}

// NewMetricsWriter returns a writer appending to app.
func NewMetricsWriter(app storage.AppendableV2, logger *slog.Logger) *MetricsWriter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := config.DefaultOTLPConfig
	w := &MetricsWriter{
		app:    app,
		logger: logger,
		settings: prw.Settings{
			AddMetricSuffixes:                    cfg.TranslationStrategy.ShouldAddSuffixes(),
			AllowUTF8:                            !cfg.TranslationStrategy.ShouldEscape(),
			PromoteResourceAttributes:            prw.NewPromoteResourceAttributes(cfg),
			KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
			ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
			PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
			LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
			LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
		},
	}
	w.pool.New = func() any { return prw.NewPrometheusConverter(nil) }
	return w
}

// Write translates md and commits it in one append transaction.
func (w *MetricsWriter) Write(ctx context.Context, md pmetric.Metrics) (err error) {
	app := w.app.AppenderV2(ctx)
	conv := w.pool.Get().(*prw.PrometheusConverter)
	conv.Reset(app)
	defer func() {
		conv.Reset(nil)
		w.pool.Put(conv)
	}()
	annots, err := conv.FromMetrics(ctx, md, w.settings)
	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		w.logger.Debug("OTLP metrics translation warnings", "warnings", ws)
	}
	if err != nil {
		// Keep what translated; FromMetrics appends every series it can.
		if cerr := app.Commit(); cerr != nil {
			return fmt.Errorf("commit OTLP metrics: %w", cerr)
		}
		return fmt.Errorf("translate OTLP metrics: %w", err)
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit OTLP metrics: %w", err)
	}
	return nil
}
