package collector

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP/gRPC exporters may send gzip-compressed messages
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/otlp"
	"github.com/meshscope/meshscope/collector/spans"
)

type grpcTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	c *Collector
}

func (g *grpcTraces) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	resp, err := g.c.consumeTraces(ctx, req, "grpc")
	if err != nil {
		return nil, g.c.grpcError(err)
	}
	return resp, nil
}

type grpcMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	c *Collector
}

func (g *grpcMetrics) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	if err := g.c.consumeMetrics(ctx, req, "grpc"); err != nil {
		return pmetricotlp.NewExportResponse(), g.c.grpcError(err)
	}
	return pmetricotlp.NewExportResponse(), nil
}

// errInvalid marks a client error (400 / INVALID_ARGUMENT).
type errInvalid struct{ err error }

func (e errInvalid) Error() string { return e.err.Error() }
func (e errInvalid) Unwrap() error { return e.err }

func (c *Collector) grpcError(err error) error {
	var inv errInvalid
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, err.Error())
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

// consumeTraces translates and hands a request to the pipeline; it returns
// once the sinks acknowledged (or refused) the spans.
func (c *Collector) consumeTraces(ctx context.Context, req *coltracepb.ExportTraceServiceRequest, transport string) (*coltracepb.ExportTraceServiceResponse, error) {
	batch, rej := otlp.Spans(make([]spans.Span, 0, countSpans(req)), req)
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

func countSpans(req *coltracepb.ExportTraceServiceRequest) int {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

func (c *Collector) consumeMetrics(ctx context.Context, req pmetricotlp.ExportRequest, transport string) error {
	md := req.Metrics()
	c.m.metricPoints.WithLabelValues(transport).Add(float64(md.DataPointCount()))
	if err := c.mw.Write(ctx, md); err != nil {
		c.m.requests.WithLabelValues("metrics", transport, "error").Inc()
		c.logger.Warn("OTLP metrics partly rejected", "err", err)
		// Translation or append problems are not fixed by retrying.
		return errInvalid{err}
	}
	c.m.requests.WithLabelValues("metrics", transport, "ok").Inc()
	return nil
}
