package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// MetricsWriter appends OTLP metrics to a Prometheus storage with
// Prometheus' own OTLP translator and its default settings
// (UnderscoreEscapingWithSuffixes: `_total`, unit and `_bucket`/`_sum`/`_count`
// suffixes; job and instance from service.namespace/service.name and
// service.instance.id; other resource attributes in target_info). Delta
// sums and histograms are converted to cumulative first.
type MetricsWriter struct {
	app      storage.AppendableV2
	settings prw.Settings
	delta    *deltaToCumulative
	logger   *slog.Logger
	pool     sync.Pool
}

// NewMetricsWriter returns a writer appending to app.
func NewMetricsWriter(app storage.AppendableV2, delta DeltaConfig, logger *slog.Logger) *MetricsWriter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := config.DefaultOTLPConfig
	w := &MetricsWriter{
		app:    app,
		logger: logger,
		delta:  newDeltaToCumulative(delta),
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

// WriteResult tells what a Write refused for good (OTLP partial success).
type WriteResult struct {
	// Rejected counts the data points not stored: delta points that could
	// not be converted, and samples the TSDB refuses (out of order, too old,
	// invalid histograms; a histogram point counts once per refused series).
	Rejected int64
	// Message names the first reason; it may be set with Rejected 0 when
	// the translator skipped a metric it could not translate.
	Message string
}

// Write translates md and commits it in one append transaction. The
// returned error is a storage failure (retryable: nothing was committed);
// what is wrong with the data itself is in WriteResult.
func (w *MetricsWriter) Write(ctx context.Context, md pmetric.Metrics) (WriteResult, error) {
	rej := w.delta.convert(md, time.Now())
	app := &refusingAppender{next: w.app.AppenderV2(ctx)}
	conv := w.pool.Get().(*prw.PrometheusConverter)
	conv.Reset(app)
	defer func() {
		conv.Reset(nil)
		w.pool.Put(conv)
	}()
	annots, terr := conv.FromMetrics(ctx, md, w.settings)
	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		w.logger.Debug("OTLP metrics translation warnings", "warnings", ws)
	}
	if app.failed != nil {
		_ = app.next.Rollback()
		return WriteResult{}, fmt.Errorf("append OTLP metrics: %w", app.failed)
	}
	if err := ctx.Err(); err != nil {
		_ = app.next.Rollback()
		return WriteResult{}, err
	}
	if err := app.next.Commit(); err != nil {
		return WriteResult{}, fmt.Errorf("commit OTLP metrics: %w", err)
	}
	rej.add(app.refused.points, "%s", app.refused.first)
	res := WriteResult{Rejected: rej.points, Message: rej.first}
	if terr != nil {
		// The translator skips what it cannot translate and goes on.
		msg := "translate OTLP metrics: " + terr.Error()
		if res.Message == "" {
			res.Message = msg
		} else {
			res.Message += "; " + msg
		}
	}
	return res, nil
}

// refusingAppender lets the translator go on past samples the TSDB refuses
// for what they are (counted as rejected), and stops it at the first
// storage failure.
type refusingAppender struct {
	next    storage.AppenderV2
	refused rejection
	failed  error
}

func (a *refusingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.failed != nil {
		return 0, a.failed
	}
	r, err := a.next.Append(ref, ls, st, t, v, h, fh, opts)
	var partial *storage.AppendPartialError
	var herr histogram.Error
	switch {
	case err == nil, errors.As(err, &partial): // exemplar problems: the sample is in
		return r, nil
	case errors.Is(err, storage.ErrOutOfOrderSample), errors.Is(err, storage.ErrOutOfBounds),
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp), errors.Is(err, storage.ErrTooOldSample),
		errors.As(err, &herr):
		a.refused.add(1, "%s: %v", ls.Get(labels.MetricName), err)
		return r, nil
	default:
		a.failed = err
		return r, err
	}
}

func (a *refusingAppender) Commit() error   { return a.next.Commit() }
func (a *refusingAppender) Rollback() error { return a.next.Rollback() }
