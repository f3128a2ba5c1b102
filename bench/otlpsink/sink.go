// Package otlpsink is an OTLP/gRPC collector for benchmarks: it answers
// trace exports and metric pushes and counts them, but decodes nothing
// beyond counting spans with a wire scan. A sink that unmarshalled every
// export would spend the benchmark process's CPU and allocations (and so
// its load generator's latency) on the proxy's telemetry.
package otlpsink

import (
	"fmt"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	traceExport  = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	metricExport = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
)

// Sink is a running collector on a loopback port.
type Sink struct {
	Addr          string
	srv           *grpc.Server
	spans         atomic.Int64
	metricExports atomic.Int64
}

// Start listens on a free loopback port and serves until Close.
func Start() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlp sink listen: %w", err)
	}
	s := &Sink{Addr: ln.Addr().String()}
	s.srv = grpc.NewServer(grpc.ForceServerCodec(wireCodec{}), grpc.UnknownServiceHandler(s.handle))
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Spans is the number of spans received so far.
func (s *Sink) Spans() int64 { return s.spans.Load() }

// MetricExports is the number of metric pushes received so far.
func (s *Sink) MetricExports() int64 { return s.metricExports.Load() }

// Close stops the server.
func (s *Sink) Close() { s.srv.Stop() }

func (s *Sink) handle(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	var m message
	if err := stream.RecvMsg(&m); err != nil {
		return err
	}
	switch method {
	case traceExport:
		s.spans.Add(m.spans)
	case metricExport:
		s.metricExports.Add(1)
	default:
		return status.Errorf(codes.Unimplemented, "otlp sink: no method %s", method)
	}
	return stream.SendMsg(&message{}) // an empty response message
}

// message is what wireCodec reads: the spans an ExportTraceServiceRequest
// holds (resource_spans = 1, scope_spans = 2, spans = 2).
type message struct{ spans int64 }

// wireCodec replaces gRPC's protobuf codec ("proto") on the sink's server:
// it counts spans in a request without decoding it and writes empty
// responses.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(any) ([]byte, error) { return nil, nil }

func (wireCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*message)
	if !ok {
		return fmt.Errorf("otlp sink: cannot decode into %T", v)
	}
	m.spans = 0
	for _, rs := range fields(data, 1) {
		for _, ss := range fields(rs, 2) {
			m.spans += int64(len(fields(ss, 2)))
		}
	}
	return nil
}

// fields returns the length-delimited fields numbered num of a message.
func fields(b []byte, num protowire.Number) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return out
		}
		b = b[tl:]
		if n == num && typ == protowire.BytesType {
			v, vl := protowire.ConsumeBytes(b)
			if vl < 0 {
				return out
			}
			out = append(out, v)
			b = b[vl:]
			continue
		}
		vl := protowire.ConsumeFieldValue(n, typ, b)
		if vl < 0 {
			return out
		}
		b = b[vl:]
	}
	return out
}
