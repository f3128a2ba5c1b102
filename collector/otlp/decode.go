package otlp

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Encoding is the wire encoding of an OTLP/HTTP body.
type Encoding int

// Encodings.
const (
	Protobuf Encoding = iota
	JSON
)

// ContentType returns the MIME type of e.
func (e Encoding) ContentType() string {
	if e == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// ErrUnsupportedMediaType wraps content types other than protobuf and JSON.
var ErrUnsupportedMediaType = errors.New("unsupported content type")

// ErrTooLarge is returned when a body exceeds the size limit (after
// decompression).
var ErrTooLarge = errors.New("payload too large")

// ParseContentType maps an OTLP/HTTP Content-Type to an Encoding.
func ParseContentType(ct string) (Encoding, error) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.TrimSpace(strings.ToLower(ct))
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return Protobuf, nil
	case "application/json":
		return JSON, nil
	}
	return 0, fmt.Errorf("%w %q: want application/x-protobuf or application/json", ErrUnsupportedMediaType, ct)
}

// ReadBody reads an HTTP body, gunzipping it if contentEncoding is gzip,
// and fails with ErrTooLarge past limit bytes (compressed or not). account,
// if not nil, wraps the decompressed stream (the collector counts the bytes
// it produces against its memory limit as they are read).
func ReadBody(r io.Reader, contentEncoding string, limit int64, account func(io.Reader) io.Reader) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(io.LimitReader(r, limit+1))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q: want gzip or none", contentEncoding)
	}
	if account != nil {
		r = account(r)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body exceeds %d bytes (max_request_bytes)", ErrTooLarge, limit)
	}
	return b, nil
}

// DecodeTraces decodes an ExportTraceServiceRequest. JSON follows the OTLP
// JSON mapping (hex trace and span ids, enum names or numbers, int64 as
// strings or numbers); it is parsed by the OpenTelemetry Collector's pdata
// and re-encoded into the official proto types.
func DecodeTraces(body []byte, enc Encoding) (*coltracepb.ExportTraceServiceRequest, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if enc == JSON {
		if err := validUTF8(body); err != nil {
			return nil, fmt.Errorf("decode OTLP JSON traces: %w", err)
		}
		pr := ptraceotlp.NewExportRequest()
		if err := pr.UnmarshalJSON(body); err != nil {
			return nil, fmt.Errorf("decode OTLP JSON traces: %w", err)
		}
		pb, err := pr.MarshalProto()
		if err != nil {
			return nil, fmt.Errorf("re-encode OTLP JSON traces: %w", err)
		}
		body = pb
	}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("decode OTLP protobuf traces: %w", err)
	}
	return req, nil
}

// DecodeMetrics decodes an ExportMetricsServiceRequest into pdata, the form
// Prometheus' translator takes.
func DecodeMetrics(body []byte, enc Encoding) (pmetricotlp.ExportRequest, error) {
	req := pmetricotlp.NewExportRequest()
	if enc == JSON {
		if err := validUTF8(body); err != nil {
			return req, fmt.Errorf("decode OTLP JSON metrics: %w", err)
		}
		if err := req.UnmarshalJSON(body); err != nil {
			return req, fmt.Errorf("decode OTLP JSON metrics: %w", err)
		}
	} else {
		if err := req.UnmarshalProto(body); err != nil {
			return req, fmt.Errorf("decode OTLP protobuf metrics: %w", err)
		}
		if err := metricsUTF8(req.Metrics()); err != nil {
			return req, fmt.Errorf("decode OTLP protobuf metrics: %w", err)
		}
	}
	return req, nil
}

// validUTF8 checks that a JSON body is UTF-8 (RFC 8259 §8.1; protobuf
// strings must be too), naming the offset of the first bad byte.
func validUTF8(body []byte) error {
	if utf8.Valid(body) {
		return nil
	}
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		}
		i += n
	}
	return errors.New("invalid UTF-8")
}
