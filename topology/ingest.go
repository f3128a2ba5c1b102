package topology

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// AppendableV2 returns next with the edge aggregator's hook: every raw
// golden-metric sample committed through it is also counted into its
// edge's aggregates (docs/topology.md, "Edge aggregates"). Give it to the
// metrics ingest (OTLP, remote write) in place of the store. The first
// call reads the store once to continue the aggregates of a previous run.
// With edge aggregates off, or when that read fails (logged), it returns
// next unchanged and graphs are computed from the raw series.
func (t *Topology) AppendableV2(next storage.AppendableV2) storage.AppendableV2 {
	if !t.hook() {
		return next
	}
	return hookV2{next: next, a: t.agg}
}

// Appendable is AppendableV2 for the storage.Appendable interface.
func (t *Topology) Appendable(next storage.Appendable) storage.Appendable {
	if !t.hook() {
		return next
	}
	return hookV1{next: next, a: t.agg}
}

// hook seeds the aggregator on first use; it reports whether hooks count.
func (t *Topology) hook() bool {
	if t.agg == nil {
		return false
	}
	t.hookOnce.Do(func() {
		if err := t.agg.seed(context.Background(), t.now().UnixMilli()); err != nil {
			t.logger.Error("edge aggregates disabled: reading the store to continue them failed", "err", err)
			return
		}
		t.hooked = true
	})
	return t.hooked
}

// staged is one raw golden sample appended in an open transaction.
type staged struct {
	st *rawState
	t  int64
	v  float64
	fh *histogram.FloatHistogram
}

// isGolden tells the raw series the aggregator reads by name.
func isGolden(l labels.Labels) bool {
	switch l.Get(labels.MetricName) {
	case metricRequests, metricReqBytes, metricRespBytes, metricDuration, metricDuration + "_bucket", metricDuration + "_sum":
		return true
	}
	return false
}

// stage records a sample appended under ref for the commit.
func (a *aggregator) stage(buf []staged, ref storage.SeriesRef, l labels.Labels, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) []staged {
	if !isGolden(l) {
		return buf
	}
	if h != nil {
		fh = h.ToFloat(nil)
	} else if fh != nil {
		fh = fh.Copy()
	}
	a.mu.Lock()
	st := a.stateFor(ref, l)
	a.mu.Unlock()
	if st == nil {
		return buf
	}
	return append(buf, staged{st: st, t: t, v: v, fh: fh})
}

// apply counts the samples of a committed transaction.
func (a *aggregator) apply(buf []staged) {
	if len(buf) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range buf {
		a.observe(s.st, s.t, s.v, s.fh, true)
	}
}

type hookV2 struct {
	next storage.AppendableV2
	a    *aggregator
}

func (h hookV2) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &hookAppenderV2{AppenderV2: h.next.AppenderV2(ctx), a: h.a}
}

type hookAppenderV2 struct {
	storage.AppenderV2
	a   *aggregator
	buf []staged
}

func (x *hookAppenderV2) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r, err := x.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	var partial *storage.AppendPartialError
	if err == nil || errors.As(err, &partial) { // exemplar errors: the sample is in
		x.buf = x.a.stage(x.buf, r, ls, t, v, h, fh)
	}
	return r, err
}

// AppendExemplars passes exemplars through to the store's appender: the
// remote-write receiver needs a storage.ExemplarAppenderV2 and exemplars do
// not count into the aggregates.
func (x *hookAppenderV2) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ea, ok := x.AppenderV2.(storage.ExemplarAppenderV2)
	if !ok {
		return ref, fmt.Errorf("exemplars not stored: %T does not append exemplars", x.AppenderV2)
	}
	return ea.AppendExemplars(ref, ls, es)
}

// The remote-write receiver asserts this interface on the appender.
var _ storage.ExemplarAppenderV2 = (*hookAppenderV2)(nil)

func (x *hookAppenderV2) Commit() error {
	err := x.AppenderV2.Commit()
	if err == nil {
		x.a.apply(x.buf)
	}
	x.buf = nil
	return err
}

func (x *hookAppenderV2) Rollback() error {
	x.buf = nil
	return x.AppenderV2.Rollback()
}

type hookV1 struct {
	next storage.Appendable
	a    *aggregator
}

func (h hookV1) Appender(ctx context.Context) storage.Appender {
	return &hookAppenderV1{Appender: h.next.Appender(ctx), a: h.a}
}

type hookAppenderV1 struct {
	storage.Appender
	a   *aggregator
	buf []staged
}

func (x *hookAppenderV1) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	r, err := x.Appender.Append(ref, l, t, v)
	if err == nil {
		x.buf = x.a.stage(x.buf, r, l, t, v, nil, nil)
	}
	return r, err
}

func (x *hookAppenderV1) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := x.Appender.AppendHistogram(ref, l, t, h, fh)
	if err == nil {
		x.buf = x.a.stage(x.buf, r, l, t, 0, h, fh)
	}
	return r, err
}

func (x *hookAppenderV1) Commit() error {
	err := x.Appender.Commit()
	if err == nil {
		x.a.apply(x.buf)
	}
	x.buf = nil
	return err
}

func (x *hookAppenderV1) Rollback() error {
	x.buf = nil
	return x.Appender.Rollback()
}
