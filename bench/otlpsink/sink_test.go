package otlpsink

import (
	"context"
	"testing"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestSinkCountsWithoutDecoding(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cc, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := context.Background()
	spans := func(n int) []*tracepb.Span {
		out := make([]*tracepb.Span, n)
		for i := range out {
			out[i] = &tracepb.Span{Name: "s", TraceId: make([]byte, 16), SpanId: make([]byte, 8)}
		}
		return out
	}
	req := &colltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans(3)}, {Spans: spans(4)}}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans(5)}}},
	}}
	for i := 0; i < 2; i++ {
		if _, err := colltrace.NewTraceServiceClient(cc).Export(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := collmetrics.NewMetricsServiceClient(cc).Export(ctx, &collmetrics.ExportMetricsServiceRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Spans(); got != 24 {
		t.Errorf("spans %d, want 24", got)
	}
	if got := s.MetricExports(); got != 1 {
		t.Errorf("metric exports %d, want 1", got)
	}
	err = cc.Invoke(ctx, "/other.Service/Call", &colltrace.ExportTraceServiceRequest{}, &colltrace.ExportTraceServiceResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
}
