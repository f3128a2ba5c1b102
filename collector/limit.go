package collector

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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

type reservationKey struct{}

// serveGRPC admits an OTLP/gRPC call as the HTTP receivers admit a
// request, then hands it to the gRPC server. gRPC is served by Go's HTTP/2
// server (grpc.Server.ServeHTTP) so that the call's body is read here: the
// length prefix of its message is reserved at once (all or nothing, like a
// declared Content-Length), further bytes as they arrive, under the body
// deadlines. A call that does not fit is answered RESOURCE_EXHAUSTED before
// its message is read.
func (c *Collector) serveGRPC(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		http.Error(w, "OTLP/gRPC endpoint: want gRPC over HTTP/2 (application/grpc)", http.StatusUnsupportedMediaType)
		return
	}
	res := &reservation{l: c.mem}
	defer res.done()
	// Streams share their connection: one may wait for others' data before
	// its first byte, holding nothing yet. The minimum rate applies once its
	// message is reserved.
	dr := newDeadlineReader(w, r.Body, c.cfg.MinBodyRate, c.cfg.BodyTimeout)
	dr.noRate = true
	var prefix [5]byte
	n, err := io.ReadFull(dr, prefix[:])
	dr.restart()
	var covered int64
	switch {
	case err == nil:
		// A message above max_request_bytes is refused by gRPC itself.
		if length := int64(binary.BigEndian.Uint32(prefix[1:])); length <= c.cfg.MaxRequestBytes {
			if err := res.grow(5 + length); err != nil {
				c.m.requests.WithLabelValues(signalOfMethod(r.URL.Path), "grpc", "overloaded").Inc()
				writeGRPCStatus(w, c.grpcError(err))
				return
			}
			covered = 5 + length
		}
	case errors.As(err, new(errSlowBody)):
		c.m.requests.WithLabelValues(signalOfMethod(r.URL.Path), "grpc", "slow").Inc()
		writeGRPCStatus(w, status.Error(codes.DeadlineExceeded, err.Error()))
		return
	}
	body := io.MultiReader(bytes.NewReader(prefix[:n]), dr)
	if err != nil { // let gRPC answer a short or broken body
		body = io.MultiReader(bytes.NewReader(prefix[:n]), errReader{err})
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{&accountingReader{r: body, res: res, covered: covered}, r.Body}
	c.grpcSrv.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reservationKey{}, res)))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// writeGRPCStatus answers a gRPC call with a trailers-only response.
func writeGRPCStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(int(st.Code())))
	h.Set("Grpc-Message", encodeGRPCMessage(st.Message()))
	if b, merr := proto.Marshal(st.Proto()); merr == nil && len(st.Proto().GetDetails()) > 0 {
		h.Set("Grpc-Status-Details-Bin", base64.RawStdEncoding.EncodeToString(b))
	}
	w.WriteHeader(http.StatusOK)
}

// encodeGRPCMessage percent-encodes a grpc-message (gRPC over HTTP/2 spec).
func encodeGRPCMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// admitGRPC makes the call's reservation cover its decoded message and
// takes a request slot; done releases the slot.
func (c *Collector) admitGRPC(ctx context.Context, raw []byte, signal string) (done func(), err error) {
	res, ok := ctx.Value(reservationKey{}).(*reservation)
	if !ok { // served outside serveGRPC (tests): a reservation of its own
		res = &reservation{l: c.mem}
		defer func() {
			if err != nil {
				res.done()
			}
		}()
	}
	if err := res.growTo(int64(len(raw))); err != nil {
		c.m.requests.WithLabelValues(signal, "grpc", "overloaded").Inc()
		return nil, c.grpcError(err)
	}
	select {
	case c.inflight <- struct{}{}:
		if !ok {
			return func() { <-c.inflight; res.done() }, nil
		}
		return func() { <-c.inflight }, nil
	default:
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
