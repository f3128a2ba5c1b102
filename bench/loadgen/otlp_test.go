package loadgen

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func decodeRequest(t *testing.T, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		t.Fatalf("generated request does not decode as OTLP: %v", err)
	}
	return req
}

func TestTraceGenRequests(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		mode TraceMode
		// want reports a problem with the decoded request, or "".
		check func(req *coltracepb.ExportTraceServiceRequest) string
	}{
		{Realistic, func(req *coltracepb.ExportTraceServiceRequest) string {
			starts := map[uint64]bool{}
			for _, rs := range req.ResourceSpans {
				for _, sp := range rs.ScopeSpans[0].Spans {
					starts[sp.StartTimeUnixNano] = true
				}
			}
			if len(starts) < 100 {
				return "realistic spans share start times"
			}
			return ""
		}},
		{Adversarial, func(req *coltracepb.ExportTraceServiceRequest) string {
			starts := map[uint64]bool{}
			hot, all := 0, 0
			for _, rs := range req.ResourceSpans {
				for _, sp := range rs.ScopeSpans[0].Spans {
					starts[sp.StartTimeUnixNano] = true
					all++
					if rs.Resource.Attributes[0].Value.GetStringValue() == HotService {
						hot++
					}
				}
			}
			if len(starts) != 1 {
				return "adversarial spans of one request have several start times"
			}
			if hot*10 < all*8 {
				return "hot service has less than 80 % of spans"
			}
			return ""
		}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			g := NewTraceGen(tc.mode, 7, start, time.Hour, 10_000)
			b, n, sample := g.Request(1000)
			if n < 1000 || n > 1060 {
				t.Fatalf("request has %d spans, want 1000 and at most one trace more", n)
			}
			req := decodeRequest(t, b)
			ids, traces, got := map[string]bool{}, map[string]int{}, 0
			for _, rs := range req.ResourceSpans {
				if k := rs.Resource.Attributes[0].Key; k != "service.name" {
					t.Fatalf("first resource attribute %q, want service.name", k)
				}
				for _, sp := range rs.ScopeSpans[0].Spans {
					got++
					if len(sp.TraceId) != 16 || len(sp.SpanId) != 8 {
						t.Fatalf("span ids of %d and %d bytes", len(sp.TraceId), len(sp.SpanId))
					}
					if ids[string(sp.SpanId)] {
						t.Fatalf("span id %x repeated", sp.SpanId)
					}
					ids[string(sp.SpanId)] = true
					traces[hex.EncodeToString(sp.TraceId)]++
					if sp.EndTimeUnixNano <= sp.StartTimeUnixNano {
						t.Fatalf("span ends at %d, not after its start %d", sp.EndTimeUnixNano, sp.StartTimeUnixNano)
					}
					if st := time.Unix(0, int64(sp.StartTimeUnixNano)); st.Before(start) || st.After(start.Add(time.Hour)) {
						t.Fatalf("span starts at %v, outside the window", st)
					}
				}
			}
			if got != n {
				t.Fatalf("decoded %d spans, generator said %d", got, n)
			}
			if traces[sample.TraceID] != sample.Spans {
				t.Fatalf("sample trace %s: %d spans in the request, sample says %d", sample.TraceID, traces[sample.TraceID], sample.Spans)
			}
			if msg := tc.check(req); msg != "" {
				t.Fatal(msg)
			}
			// A second request has new traces; the same seed repeats the bytes.
			first := bytes.Clone(b)
			b2, _, s2 := g.Request(1000)
			if s2.TraceID == sample.TraceID || bytes.Equal(b2, first) {
				t.Fatal("second request repeats the first")
			}
			again, _, _ := NewTraceGen(tc.mode, 7, start, time.Hour, 10_000).Request(1000)
			if !bytes.Equal(again, first) {
				t.Fatal("same seed gave different bytes")
			}
		})
	}
}

func TestParseTraceMode(t *testing.T) {
	for _, s := range []string{"realistic", "adversarial"} {
		m, err := ParseTraceMode(s)
		if err != nil || m.String() != s {
			t.Fatalf("ParseTraceMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseTraceMode("bursty"); err == nil {
		t.Fatal("ParseTraceMode(bursty): no error")
	}
}
