package collector

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/otlp"
)

// admitHTTP reads an OTLP/HTTP request body under the memory limit and the
// body deadlines, then takes a request slot; on failure it writes the
// error response itself. done releases the slot and the reservation once
// the request is answered.
func (c *Collector) admitHTTP(w http.ResponseWriter, r *http.Request, signal string) (body []byte, enc otlp.Encoding, done func(), ok bool) {
	enc, err := otlp.ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		c.m.requests.WithLabelValues(signal, "http", "invalid").Inc()
		writeStatus(w, otlp.Protobuf, http.StatusUnsupportedMediaType, codes.InvalidArgument, err.Error(), 0)
		return nil, enc, nil, false
	}
	body, res, err := c.readBody(w, r, r.Header.Get("Content-Encoding"))
	if err != nil {
		code, grpcCode, result := c.bodyError(w, err)
		c.m.requests.WithLabelValues(signal, "http", result).Inc()
		retry := 0
		if code == http.StatusTooManyRequests {
			retry = c.retryAfterSeconds()
		}
		c.refuseUnread(w, r, code, func() { writeStatus(w, enc, code, grpcCode, err.Error(), retry) })
		return nil, enc, nil, false
	}
	select {
	case c.inflight <- struct{}{}:
	default:
		res.done()
		c.m.requests.WithLabelValues(signal, "http", "overloaded").Inc()
		c.writeError(w, enc, c.errTooManyRequests())
		return nil, enc, nil, false
	}
	c.m.requestLength.WithLabelValues(signal).Observe(float64(len(body)))
	return body, enc, func() { <-c.inflight; res.done() }, true
}

// readBody reads r's body, gunzipped per contentEncoding, within
// max_request_bytes, the memory limit (the declared Content-Length is
// reserved at once, further bytes as they are produced) and the body
// deadlines. On error nothing stays reserved.
func (c *Collector) readBody(w http.ResponseWriter, r *http.Request, contentEncoding string) ([]byte, *reservation, error) {
	res := &reservation{l: c.mem}
	if r.ContentLength > c.cfg.MaxRequestBytes {
		return nil, res, fmt.Errorf("%w: request body of %d bytes exceeds max_request_bytes=%d", otlp.ErrTooLarge, r.ContentLength, c.cfg.MaxRequestBytes)
	}
	var covered int64
	if r.ContentLength > 0 {
		if err := res.grow(r.ContentLength); err != nil {
			return nil, res, err
		}
		covered = r.ContentLength
	}
	dr := newDeadlineReader(w, r.Body, c.cfg.MinBodyRate, c.cfg.BodyTimeout)
	body, err := otlp.ReadBody(dr, contentEncoding, c.cfg.MaxRequestBytes, func(src io.Reader) io.Reader {
		return &accountingReader{r: src, res: res, covered: covered}
	})
	dr.finish()
	if err != nil {
		res.done()
		return nil, res, err
	}
	return body, res, nil
}

// bodyError maps a readBody error to its HTTP status, gRPC code and the
// result label of meshscope_collector_requests_total. When the body was
// not read to its end the connection is closed after the answer.
func (c *Collector) bodyError(w http.ResponseWriter, err error) (int, codes.Code, string) {
	var slow errSlowBody
	switch {
	case errors.As(err, &slow):
		w.Header().Set("Connection", "close")
		return http.StatusRequestTimeout, codes.DeadlineExceeded, "slow"
	case errors.Is(err, consumer.ErrOverloaded):
		w.Header().Set("Connection", "close")
		return http.StatusTooManyRequests, codes.ResourceExhausted, "overloaded"
	case errors.Is(err, otlp.ErrTooLarge):
		w.Header().Set("Connection", "close")
		return http.StatusRequestEntityTooLarge, codes.InvalidArgument, "too_large"
	default:
		return http.StatusBadRequest, codes.InvalidArgument, "invalid"
	}
}

// maxLingerTime bounds how long a refused request's body is drained after
// its answer (nginx's lingering_time plays the same part).
const maxLingerTime = 10 * time.Second

// refuseUnread sends the answer write produces to a request refused before
// its body was read (429 overloaded, 413 too large), then reads and
// discards the rest of the body before the connection is closed: a client
// such as Go's net/http or an OTel SDK exporter writes its whole body
// before it reads the answer, and a server that closes with unread data
// resets the connection, so the client sees "broken pipe" or "connection
// reset" instead of the 429 and its Retry-After. The drain is bounded:
// at most max_request_bytes, at most maxLingerTime, the body deadlines
// (min_body_rate) apply, it holds no memory reservation and no request
// slot, and at most 4 × max_concurrent_requests drains run at once (beyond
// that the connection is closed at once, as before). Other answers are
// written as they are.
func (c *Collector) refuseUnread(w http.ResponseWriter, r *http.Request, code int, write func()) {
	if code != http.StatusTooManyRequests && code != http.StatusRequestEntityTooLarge {
		write()
		return
	}
	select {
	case c.lingering <- struct{}{}:
		defer func() { <-c.lingering }()
	default:
		write()
		return
	}
	rc := http.NewResponseController(w)
	// Without full duplex net/http forbids reading an HTTP/1 body once the
	// answer is sent (HTTP/2 streams are always full duplex).
	_ = rc.EnableFullDuplex()
	write()
	if err := rc.Flush(); err != nil {
		return
	}
	timeout := min(c.cfg.BodyTimeout, maxLingerTime)
	dr := newDeadlineReader(w, r.Body, c.cfg.MinBodyRate, timeout)
	n, _ := io.Copy(io.Discard, io.LimitReader(dr, c.cfg.MaxRequestBytes))
	c.m.lingerBytes.Add(float64(n))
}

func (c *Collector) retryAfterSeconds() int { return int(c.cfg.RetryAfter.Seconds() + 0.999) }

func (c *Collector) handleHTTPTraces(w http.ResponseWriter, r *http.Request) {
	body, enc, done, ok := c.admitHTTP(w, r, "traces")
	if !ok {
		return
	}
	defer done()
	batch, rej, err := otlp.DecodeTraceSpans(nil, body, enc)
	if err != nil {
		c.m.requests.WithLabelValues("traces", "http", "invalid").Inc()
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error(), 0)
		return
	}
	resp, err := c.consumeTraces(r.Context(), batch, rej, "http")
	if err != nil {
		c.writeError(w, enc, err)
		return
	}
	writeMessage(w, enc, http.StatusOK, resp)
}

func (c *Collector) handleHTTPMetrics(w http.ResponseWriter, r *http.Request) {
	body, enc, done, ok := c.admitHTTP(w, r, "metrics")
	if !ok {
		return
	}
	defer done()
	req, err := otlp.DecodeMetrics(body, enc)
	if err != nil {
		c.m.requests.WithLabelValues("metrics", "http", "invalid").Inc()
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error(), 0)
		return
	}
	resp, err := c.consumeMetrics(r.Context(), req, "http")
	if err != nil {
		c.writeError(w, enc, err)
		return
	}
	var out []byte
	if enc == otlp.JSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", enc.ContentType())
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

func (c *Collector) writeError(w http.ResponseWriter, enc otlp.Encoding, err error) {
	var inv errInvalid
	switch {
	case errors.As(err, &inv):
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error(), 0)
	case errors.Is(err, consumer.ErrOverloaded):
		writeStatus(w, enc, http.StatusTooManyRequests, codes.ResourceExhausted, err.Error(), c.retryAfterSeconds())
	default:
		writeStatus(w, enc, http.StatusServiceUnavailable, codes.Unavailable, err.Error(), c.retryAfterSeconds())
	}
}

// writeStatus writes an OTLP/HTTP error: a google.rpc.Status in the
// request's encoding, with Retry-After (seconds) when retryAfter > 0.
func writeStatus(w http.ResponseWriter, enc otlp.Encoding, httpCode int, code codes.Code, msg string, retryAfter int) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	// Messages may quote the client's invalid UTF-8; a protobuf string
	// must be valid UTF-8 or the status would not encode.
	writeMessage(w, enc, httpCode, &status.Status{Code: int32(code), Message: strings.ToValidUTF8(msg, "\uFFFD")})
}

func writeMessage(w http.ResponseWriter, enc otlp.Encoding, httpCode int, m proto.Message) {
	var b []byte
	var err error
	if enc == otlp.JSON {
		b, err = protojson.Marshal(m)
	} else {
		b, err = proto.Marshal(m)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", enc.ContentType())
	w.WriteHeader(httpCode)
	w.Write(b)
}
