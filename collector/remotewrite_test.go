package collector

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/spans"
)

// plainAppendable's appenders cannot append exemplars on their own.
type plainAppendable struct{}

type plainAppender struct{ storage.AppenderV2 }

func (plainAppendable) AppenderV2(context.Context) storage.AppenderV2 { return plainAppender{} }
func (plainAppender) Rollback() error                                 { return nil }

// A metrics sink that the remote-write receiver cannot use is refused at
// start, naming the missing interface, instead of answering 500 to every
// write.
func TestNewRefusesMetricsSinkWithoutExemplarAppender(t *testing.T) {
	sink := consumer.SpansFunc(func(context.Context, []spans.Span) error { return nil })
	_, err := New(Config{OTLPGRPC: Off, OTLPHTTP: Off}, Sinks{Spans: sink, Metrics: plainAppendable{}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "ExemplarAppenderV2") {
		t.Fatalf("New with a sink lacking AppendExemplars: %v, want an error naming storage.ExemplarAppenderV2", err)
	}
}
