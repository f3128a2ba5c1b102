package otlp

import (
	"fmt"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/spans"
)

func benchRequest(n int) []byte {
	req := sampleRequest()
	tmpl := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
	var sps []*tracepb.Span
	for i := range n {
		sp := proto.Clone(tmpl).(*tracepb.Span)
		sp.SpanId = []byte{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6}
		for k := range 8 {
			sp.Attributes = append(sp.Attributes, str(fmt.Sprintf("attr.%d", k), fmt.Sprintf("value-%d-%d", k, i%7)))
		}
		sps = append(sps, sp)
	}
	req.ResourceSpans[0].ScopeSpans[0].Spans = sps
	b, _ := proto.Marshal(req)
	return b
}

func BenchmarkDecodeTranslate512(b *testing.B) {
	body := benchRequest(512)
	b.SetBytes(int64(len(body)))
	var out []spans.Span
	for b.Loop() {
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			b.Fatal(err)
		}
		out, _ = Spans(out[:0], req)
	}
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "spans/s")
}
