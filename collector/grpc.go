package collector

import (
	"context"
	"errors"
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP/gRPC exporters may send gzip-compressed messages
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/otlp"
	"github.com/meshscope/meshscope/collector/spans"
)

// rawMessage is an OTLP request or response as its protobuf bytes. The
// receivers take requests undecoded so that they can reserve memory for a
// message before decoding it and answer an undecodable one with
// INVALID_ARGUMENT (gRPC's own decoding failure is INTERNAL).
type rawMessage struct{ b []byte }

// ingestCodec is gRPC's proto codec, passing rawMessage through as is.
type ingestCodec struct{ proto encoding.CodecV2 }

func (ingestCodec) Name() string { return "proto" }

func (c ingestCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c ingestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		m.b = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// exportService describes an OTLP Export service whose handler takes the
// request undecoded.
func exportService(name, file string, export func(*Collector, context.Context, []byte) (any, error)) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: name,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawMessage)
				if err := dec(in); err != nil {
					return nil, err
				}
				return export(srv.(*Collector), ctx, in.b)
			},
		}},
		Metadata: file,
	}
}

var (
	traceServiceDesc = exportService("opentelemetry.proto.collector.trace.v1.TraceService",
		"opentelemetry/proto/collector/trace/v1/trace_service.proto", (*Collector).exportTracesGRPC)
	metricsServiceDesc = exportService("opentelemetry.proto.collector.metrics.v1.MetricsService",
		"opentelemetry/proto/collector/metrics/v1/metrics_service.proto", (*Collector).exportMetricsGRPC)
)

func (c *Collector) exportTracesGRPC(ctx context.Context, raw []byte) (any, error) {
	done, err := c.admitGRPC(ctx, raw, "traces")
	if err != nil {
		return nil, err
	}
	defer done()
	batch, rej, err := otlp.DecodeTraceSpans(nil, raw, otlp.Protobuf)
	if err != nil {
		c.m.requests.WithLabelValues("traces", "grpc", "invalid").Inc()
		return nil, status.Error(codes.InvalidArgument, strings.ToValidUTF8(err.Error(), "\uFFFD"))
	}
	resp, err := c.consumeTraces(ctx, batch, rej, "grpc")
	if err != nil {
		return nil, c.grpcError(err)
	}
	return resp, nil
}

func (c *Collector) exportMetricsGRPC(ctx context.Context, raw []byte) (any, error) {
	done, err := c.admitGRPC(ctx, raw, "metrics")
	if err != nil {
		return nil, err
	}
	defer done()
	req, err := otlp.DecodeMetrics(raw, otlp.Protobuf)
	if err != nil {
		c.m.requests.WithLabelValues("metrics", "grpc", "invalid").Inc()
		return nil, status.Error(codes.InvalidArgument, strings.ToValidUTF8(err.Error(), "\uFFFD"))
	}
	resp, err := c.consumeMetrics(ctx, req, "grpc")
	if err != nil {
		return nil, c.grpcError(err)
	}
	out, err := resp.MarshalProto()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rawMessage{b: out}, nil
}

// errInvalid marks a client error (400 / INVALID_ARGUMENT).
type errInvalid struct{ err error }

func (e errInvalid) Error() string { return e.err.Error() }
func (e errInvalid) Unwrap() error { return e.err }

func (c *Collector) grpcError(err error) error {
	var inv errInvalid
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, strings.ToValidUTF8(err.Error(), "\uFFFD"))
	case errors.Is(err, consumer.ErrOverloaded):
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(c.cfg.RetryAfter)}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return status.Error(codes.Unavailable, err.Error())
	}
}

// consumeTraces hands a request's decoded spans to the pipeline; it returns
// once the sinks acknowledged (or refused) the spans.
func (c *Collector) consumeTraces(ctx context.Context, batch []spans.Span, rej otlp.Rejection, transport string) (*coltracepb.ExportTraceServiceResponse, error) {
	c.m.received.WithLabelValues(transport).Add(float64(len(batch) + rej.Count))
	resp := &coltracepb.ExportTraceServiceResponse{}
	if rej.Count > 0 {
		c.m.dropped.WithLabelValues("invalid").Add(float64(rej.Count))
		if len(batch) == 0 {
			c.m.requests.WithLabelValues("traces", transport, "invalid").Inc()
			return nil, errInvalid{errors.New(rej.Message)}
		}
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(rej.Count), ErrorMessage: rej.Message}
	}
	if err := c.batch.ConsumeSpans(ctx, batch); err != nil {
		result := "error"
		if errors.Is(err, consumer.ErrOverloaded) {
			result = "overloaded"
		}
		c.m.requests.WithLabelValues("traces", transport, result).Inc()
		return nil, err
	}
	c.m.requests.WithLabelValues("traces", transport, "ok").Inc()
	return resp, nil
}

// consumeMetrics converts and appends a request's metrics. Points refused
// for what they are come back as partial success; a storage failure is a
// retryable error (nothing of the request was committed).
func (c *Collector) consumeMetrics(ctx context.Context, req pmetricotlp.ExportRequest, transport string) (pmetricotlp.ExportResponse, error) {
	md := req.Metrics()
	c.m.metricPoints.WithLabelValues(transport).Add(float64(md.DataPointCount()))
	res, err := c.mw.Write(ctx, md)
	if err != nil {
		c.m.requests.WithLabelValues("metrics", transport, "error").Inc()
		return pmetricotlp.ExportResponse{}, err
	}
	resp := pmetricotlp.NewExportResponse()
	if res.Rejected > 0 || res.Message != "" {
		c.m.metricPointsRejected.Add(float64(res.Rejected))
		c.logger.Warn("OTLP metrics partly rejected", "rejected_points", res.Rejected, "reason", res.Message)
		resp.PartialSuccess().SetRejectedDataPoints(res.Rejected)
		resp.PartialSuccess().SetErrorMessage(strings.ToValidUTF8(res.Message, "\uFFFD"))
	}
	c.m.requests.WithLabelValues("metrics", transport, "ok").Inc()
	return resp, nil
}
