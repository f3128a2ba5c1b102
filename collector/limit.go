package collector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/meshscope/meshscope/collector/consumer"
)

// errTooManyRequests is the overload answer when max_concurrent_requests
// requests are already in progress.
func (c *Collector) errTooManyRequests() error {
	return fmt.Errorf("%d requests in progress (max_concurrent_requests): %w", cap(c.inflight), consumer.ErrOverloaded)
}

func signalOf(r *http.Request) string {
	if strings.HasSuffix(r.URL.Path, "metrics") {
		return "metrics"
	}
	return "traces"
}

// grpcAdmission is the state the tap hands to a call's handler.
type grpcAdmission struct {
	started atomic.Bool
	timer   *time.Timer
}

type grpcAdmissionKey struct{}

// tapGRPC runs when a stream opens, before its message is read: it refuses
// new calls while the memory limit is reached, and cuts a call whose
// message has not fully arrived within body_timeout (the message's bytes
// are reserved once it is complete, in admitGRPC).
func (c *Collector) tapGRPC(ctx context.Context, info *tap.Info) (context.Context, error) {
	if c.mem.full() {
		c.m.requests.WithLabelValues(signalOfMethod(info.FullMethodName), "grpc", "overloaded").Inc()
		return ctx, c.grpcError(fmt.Errorf("ingest memory limit: max_inflight_bytes=%d in use: %w", c.mem.max, consumer.ErrOverloaded))
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &grpcAdmission{}
	a.timer = time.AfterFunc(c.cfg.BodyTimeout, func() {
		if a.started.CompareAndSwap(false, true) {
			c.m.requests.WithLabelValues(signalOfMethod(info.FullMethodName), "grpc", "slow").Inc()
			cancel()
		}
	})
	context.AfterFunc(ctx, func() { a.timer.Stop() })
	return context.WithValue(ctx, grpcAdmissionKey{}, a), nil
}

// admitGRPC reserves memory for a received message and takes a request
// slot; done releases both.
func (c *Collector) admitGRPC(ctx context.Context, raw []byte, signal string) (done func(), err error) {
	if a, ok := ctx.Value(grpcAdmissionKey{}).(*grpcAdmission); ok {
		if !a.started.CompareAndSwap(false, true) {
			return nil, status.Errorf(codes.DeadlineExceeded, "message not received within body_timeout=%s", c.cfg.BodyTimeout)
		}
		a.timer.Stop()
	}
	res := &reservation{l: c.mem}
	if err := res.grow(int64(len(raw))); err != nil {
		c.m.requests.WithLabelValues(signal, "grpc", "overloaded").Inc()
		return nil, c.grpcError(err)
	}
	select {
	case c.inflight <- struct{}{}:
		return func() { <-c.inflight; res.done() }, nil
	default:
		res.done()
		c.m.requests.WithLabelValues(signal, "grpc", "overloaded").Inc()
		return nil, c.grpcError(c.errTooManyRequests())
	}
}

func signalOfMethod(fullMethod string) string {
	if strings.HasSuffix(fullMethod, "MetricsService/Export") {
		return "metrics"
	}
	return "traces"
}
