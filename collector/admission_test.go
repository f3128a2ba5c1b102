package collector

import (
	"context"
	"net/http"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// rawClientCodec sends []byte messages as they are (a client that sends
// bytes which are not the protobuf they claim to be).
type rawClientCodec struct{}

func (rawClientCodec) Name() string { return "proto" }
func (rawClientCodec) Marshal(v any) ([]byte, error) {
	return *(v.(*[]byte)), nil
}
func (rawClientCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

var _ encoding.Codec = rawClientCodec{}

// Undecodable input is the client's error: 400 over HTTP (also when it
// carries invalid UTF-8, which the error message quotes) and
// INVALID_ARGUMENT over gRPC, as the response table of docs/collector.md
// says.
func TestUndecodableInputIsInvalidArgument(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	for _, c := range []struct {
		name, path, ct string
		body           string
	}{
		{"traces json invalid utf-8", "/v1/traces", "application/json",
			`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"a1a2a3a4a5a6a7a8a9aaabacadaeafb0","spanId":"b1b2b3b4b5b6b7b8","name":"bad \xff\xfe name"}]}]}]}`},
		{"traces json invalid utf-8 in a syntax error", "/v1/traces", "application/json", "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"\xff\xfe"},
		{"metrics json invalid utf-8 in a syntax error", "/v1/metrics", "application/json", "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"\xff\xfe"},
		{"traces json invalid utf-8 in key", "/v1/traces", "application/json", "{\"resource\xffSpans\":[]}"},
		{"metrics json invalid utf-8", "/v1/metrics", "application/json",
			`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m\xff","gauge":{"dataPoints":[{"asDouble":1}]}}]}]}]}`},
		{"traces protobuf invalid utf-8", "/v1/traces", "application/x-protobuf", "\x0a\x09\x12\x07\x12\x05\x2a\x03\xff\xfe\xfd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, "http://"+e.c.HTTPAddr()+c.path, c.ct, "", []byte(c.body))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %q", resp.StatusCode, body)
			}
		})
	}

	conn, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawClientCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, method := range []string{
		"/opentelemetry.proto.collector.trace.v1.TraceService/Export",
		"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
	} {
		in, out := []byte{0xff, 0xff, 0xff}, []byte(nil)
		err := conn.Invoke(context.Background(), method, &in, &out)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "decode OTLP protobuf") {
			t.Errorf("%s with undecodable bytes: %v, want INVALID_ARGUMENT naming the decoding", method, err)
		}
	}
	// The trace service still works for well-formed requests.
	good, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := coltracepb.NewTraceServiceClient(good).Export(context.Background(),
		otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718")); err != nil {
		t.Fatalf("valid request after undecodable ones: %v", err)
	}
}
