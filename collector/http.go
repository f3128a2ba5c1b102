package collector

import (
	"errors"
	"net/http"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/otlp"
)

// readOTLP reads and checks an OTLP/HTTP request body, writing the error
// response itself when it fails.
func (c *Collector) readOTLP(w http.ResponseWriter, r *http.Request, signal string) ([]byte, otlp.Encoding, bool) {
	enc, err := otlp.ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		c.m.requests.WithLabelValues(signal, "http", "invalid").Inc()
		writeStatus(w, otlp.Protobuf, http.StatusUnsupportedMediaType, codes.InvalidArgument, err.Error(), 0)
		return nil, enc, false
	}
	if r.ContentLength > c.cfg.MaxRequestBytes {
		c.m.requests.WithLabelValues(signal, "http", "too_large").Inc()
		writeStatus(w, enc, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
			"request body of "+strconv.FormatInt(r.ContentLength, 10)+" bytes exceeds max_request_bytes="+strconv.FormatInt(c.cfg.MaxRequestBytes, 10), 0)
		return nil, enc, false
	}
	body, err := otlp.ReadBody(r.Body, r.Header.Get("Content-Encoding"), c.cfg.MaxRequestBytes)
	if err != nil {
		if errors.Is(err, otlp.ErrTooLarge) {
			c.m.requests.WithLabelValues(signal, "http", "too_large").Inc()
			writeStatus(w, enc, http.StatusRequestEntityTooLarge, codes.InvalidArgument, err.Error()+" (max_request_bytes)", 0)
		} else {
			c.m.requests.WithLabelValues(signal, "http", "invalid").Inc()
			writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error(), 0)
		}
		return nil, enc, false
	}
	c.m.requestLength.WithLabelValues(signal).Observe(float64(len(body)))
	return body, enc, true
}

func (c *Collector) handleHTTPTraces(w http.ResponseWriter, r *http.Request) {
	body, enc, ok := c.readOTLP(w, r, "traces")
	if !ok {
		return
	}
	req, err := otlp.DecodeTraces(body, enc)
	if err != nil {
		c.m.requests.WithLabelValues("traces", "http", "invalid").Inc()
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error(), 0)
		return
	}
	resp, err := c.consumeTraces(r.Context(), req, "http")
	if err != nil {
		c.writeError(w, enc, err)
		return
	}
	writeMessage(w, enc, http.StatusOK, resp)
}

func (c *Collector) handleHTTPMetrics(w http.ResponseWriter, r *http.Request) {
	body, enc, ok := c.readOTLP(w, r, "metrics")
	if !ok {
		return
	}
	req := pmetricotlp.NewExportRequest()
	var err error
	if enc == otlp.JSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		c.m.requests.WithLabelValues("metrics", "http", "invalid").Inc()
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, "decode OTLP metrics: "+err.Error(), 0)
		return
	}
	if err := c.consumeMetrics(r.Context(), req, "http"); err != nil {
		c.writeError(w, enc, err)
		return
	}
	resp := pmetricotlp.NewExportResponse()
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
		writeStatus(w, enc, http.StatusTooManyRequests, codes.ResourceExhausted, err.Error(), int(c.cfg.RetryAfter.Seconds()+0.999))
	default:
		writeStatus(w, enc, http.StatusServiceUnavailable, codes.Unavailable, err.Error(), int(c.cfg.RetryAfter.Seconds()+0.999))
	}
}

// writeStatus writes an OTLP/HTTP error: a google.rpc.Status in the
// request's encoding, with Retry-After (seconds) when retryAfter > 0.
func writeStatus(w http.ResponseWriter, enc otlp.Encoding, httpCode int, code codes.Code, msg string, retryAfter int) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeMessage(w, enc, httpCode, &status.Status{Code: int32(code), Message: msg})
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
