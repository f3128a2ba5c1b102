package collector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"github.com/meshscope/meshscope/collector/batch"
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
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("requests")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.Attributes().PutStr("path", "/a\xff")
	dp.SetDoubleValue(1)
	badMetrics, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
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
		{"metrics protobuf invalid utf-8 in an attribute", "/v1/metrics", "application/x-protobuf", string(badMetrics)},
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

// While one request holds memory, others are refused as overloaded once
// what they declare, or what their gzip body inflates to, or a remote-write
// body decodes to, does not fit in max_inflight_bytes; everything is
// released when the requests are answered.
func TestMemoryLimitRefusesWhatDoesNotFit(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{}), entered: make(chan struct{})}
	e := startEnv(t, Config{MaxInflightBytes: 1 << 20, Batch: batch.Config{Workers: 1}}, sink)
	released := false
	defer func() {
		if !released {
			close(sink.release)
		}
	}()
	url := "http://" + e.c.HTTPAddr() + "/v1/traces"
	first := make(chan int, 1)
	go func() {
		resp, _ := post(t, url, "application/x-protobuf", "", mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718")))
		first <- resp.StatusCode
	}()
	<-sink.entered // the first request holds its reservation until acknowledged

	// 8 bytes per body byte: 200 KB declared is 1.6 MB, beyond the limit.
	big := mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f11", strings.Split(strings.Repeat("1112131415161719,", 12000), ",")[:12000]...))
	if len(big) < 128<<10 {
		t.Fatalf("request of %d bytes, want > 128 KiB", len(big))
	}
	for _, c := range []struct {
		name, ce string
		body     []byte
	}{
		{"declared", "", big},
		{"gzip inflating", "gzip", gz(big)},
	} {
		resp, body := post(t, url, "application/x-protobuf", c.ce, c.body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "max_inflight_bytes") {
			t.Errorf("%s: %d %q, want 429 with Retry-After naming max_inflight_bytes", c.name, resp.StatusCode, body)
		}
	}
	mux := http.NewServeMux()
	e.c.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	wr := &prompb.WriteRequest{}
	for i := range 3000 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "rw_load"}, {Name: "i", Value: strconv.Itoa(i)}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		})
	}
	raw, _ := wr.Marshal()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(rb), "max_inflight_bytes") {
		t.Errorf("remote write over the limit: %d %q, want 429", resp.StatusCode, rb)
	}

	close(sink.release)
	released = true
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	if used := e.c.mem.used.Load(); used != 0 {
		t.Fatalf("%d bytes still reserved after every request was answered", used)
	}
	// With nothing in flight a request larger than the limit still passes.
	if resp, body := post(t, url, "application/x-protobuf", "", big); resp.StatusCode != http.StatusOK {
		t.Fatalf("lone large request: %d %q", resp.StatusCode, body)
	}
}

// slowGRPCCall opens an OTLP/gRPC call over a raw HTTP/2 connection whose
// message declares declared bytes, sends the first send of them, then
// nothing; it returns the call's grpc-status and grpc-message.
func slowGRPCCall(t *testing.T, addr string, declared uint32, send int) (string, string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", addr},
		{":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	msg := make([]byte, 5+send)
	binary.BigEndian.PutUint32(msg[1:5], declared)
	fr.WriteData(1, false, msg)
	dec := hpack.NewDecoder(4096, nil)
	var code, message string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v (after %s)", err, time.Since(start))
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, hf := range fields {
				switch hf.Name {
				case "grpc-status":
					code = hf.Value
				case "grpc-message":
					message = hf.Value
				}
			}
			if f.StreamEnded() {
				return code, message, time.Since(start)
			}
		case *http2.RSTStreamFrame:
			return code, "RST_STREAM " + f.ErrCode.String(), time.Since(start)
		}
	}
}

// A gRPC call whose message stalls is cut: before its length prefix
// arrives it holds nothing and gets body_timeout; once its message is
// reserved the minimum rate applies after the grace period.
func TestSlowGRPCMessageIsCut(t *testing.T) {
	e := startEnv(t, Config{BodyTimeout: 2 * time.Second}, nil)
	code, msg, took := slowGRPCCall(t, e.c.GRPCAddr(), 100000, 10)
	if code != strconv.Itoa(int(codes.DeadlineExceeded)) && !strings.Contains(msg, "too slow") {
		t.Errorf("stalled message: grpc-status %q %q after %s, want the call cut as too slow", code, msg, took)
	}
	if took > 15*time.Second {
		t.Errorf("stalled message cut after %s, want about body_timeout", took)
	}
	if used := e.c.mem.used.Load(); used != 0 {
		t.Errorf("%d bytes still reserved after the stalled call", used)
	}
	t.Logf("stalled gRPC message: grpc-status %s %q after %s", code, msg, took.Round(time.Millisecond))
}

// A request refused before its body is read (429) gets its answer even
// when the client writes its whole body before reading, and reads late:
// the server drains the body after answering instead of resetting the
// connection under the client's writes ("broken pipe", no 429).
func TestRefusalIsReadableByClientThatWritesFirst(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{}), entered: make(chan struct{})}
	e := startEnv(t, Config{MaxInflightBytes: 1 << 20, Batch: batch.Config{Workers: 1}}, sink)
	defer close(sink.release)
	url := "http://" + e.c.HTTPAddr() + "/v1/traces"
	first := mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718"))
	go func() {
		if resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(first)); err == nil {
			resp.Body.Close()
		}
	}()
	<-sink.entered // holds its reservation: the next large request does not fit

	for _, size := range []int{4 << 20, 12 << 20} {
		conn, err := net.Dial("tcp", e.c.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		writeErr := make(chan error, 1)
		go func() {
			_, err := io.WriteString(conn, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
			if err == nil {
				_, err = conn.Write(make([]byte, size))
			}
			writeErr <- err
		}()
		// A client busy elsewhere reads late, past net/http's 500 ms
		// before it closes a connection with unread data.
		time.Sleep(time.Second)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%d-byte request: reading the answer: %v (write: %v)", size, err, <-writeErr)
			conn.Close()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%d-byte request: %d %q, want 429 with Retry-After", size, resp.StatusCode, body)
		}
		if err := <-writeErr; err != nil {
			t.Errorf("%d-byte request: writing the body after the refusal: %v", size, err)
		}
		conn.Close()
	}
	if n := testutil.ToFloat64(e.c.m.lingerBytes); n < 16<<20 {
		t.Errorf("meshscope_collector_refused_body_bytes_discarded_total = %v, want the two bodies (%d)", n, 16<<20)
	}
}

func TestSoftLimitFollowsTheNonIngestHeap(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                      string
		live, reserved, max, want int64
	}{
		{"idle server", 100 * mib, 0, 256 * mib, 100*mib + 256*mib + softLimitHeadroom},
		{"during a flood the reservations are not counted twice", 400 * mib, 256 * mib, 256 * mib, 144*mib + 256*mib + softLimitHeadroom},
		{"large stores keep their own heap", 3000 * mib, 0, 512 * mib, 3000*mib + 512*mib + softLimitHeadroom},
		{"reservation above the live heap", 10 * mib, 50 * mib, 256 * mib, 256*mib + softLimitHeadroom},
	} {
		if got := softLimit(c.live, c.reserved, c.max); got != c.want {
			t.Errorf("%s: softLimit = %d MiB, want %d MiB", c.name, got/mib, c.want/mib)
		}
	}
}
