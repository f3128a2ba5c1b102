package collector

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
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

// metadataRecorder is a MetadataSink keeping what it is given.
type metadataRecorder map[string]metadata.Metadata

func (m metadataRecorder) SetMetadata(family string, md metadata.Metadata) { m[family] = md }

// FuzzRemoteWriteV1Metadata: the scan of a remote write 1.0 body for its
// metadata never panics, and finds the metadata of a valid request.
func FuzzRemoteWriteV1Metadata(f *testing.F) {
	valid, _ := (&prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}}},
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: ""}},
	}).Marshal()
	f.Add(snappy.Encode(nil, valid))
	f.Add(snappy.Encode(nil, []byte{0x1a, 0x05, 0x08, 0x01, 0x12, 0x01}))
	f.Add([]byte("not snappy"))
	c := &Collector{cfg: Config{MaxRequestBytes: 1 << 20}}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := metadataRecorder{}
		c.sinks.Metadata = rec
		n, err := snappy.DecodedLen(body)
		if err != nil {
			return
		}
		c.remoteWriteV1Metadata(body, n)
		if bytes.Equal(body, snappy.Encode(nil, valid)) {
			if got := rec["http_requests_total"]; got.Type != model.MetricTypeCounter || got.Help != "Requests." {
				t.Fatalf("metadata of a valid request: %+v", rec)
			}
		}
	})
}
