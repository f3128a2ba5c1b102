package collector

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/otlp"
)

// errTooManyRequests is the overload answer when max_concurrent_requests
// requests are already in progress.
func (c *Collector) errTooManyRequests() error {
	return fmt.Errorf("%d requests in progress (max_concurrent_requests): %w", cap(c.inflight), consumer.ErrOverloaded)
}

// limitHTTP refuses a request with 429 before reading its body when
// max_concurrent_requests are in progress.
func (c *Collector) limitHTTP(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case c.inflight <- struct{}{}:
			defer func() { <-c.inflight }()
			h(w, r)
		default:
			enc, err := otlp.ParseContentType(r.Header.Get("Content-Type"))
			if err != nil {
				enc = otlp.Protobuf
			}
			c.m.requests.WithLabelValues(signalOf(r), "http", "overloaded").Inc()
			c.writeError(w, enc, c.errTooManyRequests())
		}
	}
}

func signalOf(r *http.Request) string {
	if strings.HasSuffix(r.URL.Path, "metrics") {
		return "metrics"
	}
	return "traces"
}

// limitGRPC applies the same limit to gRPC calls. It runs after gRPC
// decoded the message (gRPC offers no hook between reading a message and
// decoding it that is also told when the call ends), so for gRPC the limit
// bounds requests waiting in the pipeline, and decoding memory is bounded
// by max_request_bytes × the streams of each connection
// (grpc.MaxConcurrentStreams = max_concurrent_requests).
func (c *Collector) limitGRPC(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	select {
	case c.inflight <- struct{}{}:
		defer func() { <-c.inflight }()
		return handler(ctx, req)
	default:
		signal := "traces"
		if strings.HasSuffix(info.FullMethod, "MetricsService/Export") {
			signal = "metrics"
		}
		c.m.requests.WithLabelValues(signal, "grpc", "overloaded").Inc()
		return nil, c.grpcError(c.errTooManyRequests())
	}
}
