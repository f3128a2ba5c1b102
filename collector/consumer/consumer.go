package consumer

import (
	"context"
	"errors"

	"github.com/meshscope/meshscope/collector/spans"
)

// ErrOverloaded is returned (possibly wrapped) by a consumer that cannot take
// more work now. Receivers map it to HTTP 429 / gRPC RESOURCE_EXHAUSTED with
// retry information; the batch was not accepted and the sender should retry.
var ErrOverloaded = errors.New("overloaded, retry later")

// Spans takes batches of finished spans. The slice and the spans in it belong
// to the callee only for the duration of the call: a consumer that keeps them
// must copy.
type Spans interface {
	ConsumeSpans(ctx context.Context, batch []spans.Span) error
}

// SpansFunc adapts a function to Spans.
type SpansFunc func(ctx context.Context, batch []spans.Span) error

// ConsumeSpans calls f.
func (f SpansFunc) ConsumeSpans(ctx context.Context, batch []spans.Span) error { return f(ctx, batch) }

// FanOut hands each batch to every consumer in order and returns the joined
// errors. The first consumer should be the durable store: if it fails, the
// others are not called, so nothing is counted that was not kept.
type FanOut []Spans

// ConsumeSpans implements Spans.
func (f FanOut) ConsumeSpans(ctx context.Context, batch []spans.Span) error {
	if len(f) == 0 {
		return nil
	}
	if err := f[0].ConsumeSpans(ctx, batch); err != nil {
		return err
	}
	var errs []error
	for _, c := range f[1:] {
		if err := c.ConsumeSpans(ctx, batch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
