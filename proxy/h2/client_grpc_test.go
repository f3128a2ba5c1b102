package h2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// clientGRPCServer starts a grpc-go server (which speaks h2c with prior
// knowledge) with the health service and a bidi echo service.
func clientGRPCServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Bidi",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				for {
					m := new(wrapperspb.StringValue)
					if err := stream.RecvMsg(m); err == io.EOF {
						return nil
					} else if err != nil {
						return err
					}
					m.Value = "echo:" + m.Value
					if err := stream.SendMsg(m); err != nil {
						return err
					}
				}
			},
		}},
	}, struct{}{})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// clientGRPCFrame is a gRPC length-prefixed message (uncompressed).
func clientGRPCFrame(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

func clientGRPCRead(r io.Reader, m proto.Message) error {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("message body: %w", err)
	}
	return proto.Unmarshal(b, m)
}

func clientGRPCRequest(addr, method string, body io.Reader) *http.Request {
	req, _ := http.NewRequest("POST", "http://"+addr+method, body)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	return req
}

func TestClientGRPCUnaryHealthCheck(t *testing.T) {
	addr := clientGRPCServer(t)
	tr, _ := newClientTestTransport(t)
	for _, tc := range []struct {
		service    string
		wantStatus string
		wantHealth healthpb.HealthCheckResponse_ServingStatus
	}{
		{"svc", "0", healthpb.HealthCheckResponse_SERVING},
		{"", "0", healthpb.HealthCheckResponse_SERVING},
		{"unknown", "5", 0}, // NOT_FOUND, trailers-only response
	} {
		t.Run(tc.service, func(t *testing.T) {
			req := clientGRPCRequest(addr, "/grpc.health.v1.Health/Check",
				bytes.NewReader(clientGRPCFrame(t, &healthpb.HealthCheckRequest{Service: tc.service})))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var hr healthpb.HealthCheckResponse
			if tc.wantStatus == "0" {
				if err := clientGRPCRead(resp.Body, &hr); err != nil {
					t.Fatal(err)
				}
				if hr.Status != tc.wantHealth {
					t.Errorf("health %v, want %v", hr.Status, tc.wantHealth)
				}
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatal(err)
			}
			// A trailers-only response carries grpc-status in its headers.
			got := resp.Trailer.Get("Grpc-Status")
			if got == "" {
				got = resp.Header.Get("Grpc-Status")
			}
			if got != tc.wantStatus {
				t.Errorf("grpc-status %q (%q), want %s", got, resp.Trailer.Get("Grpc-Message"), tc.wantStatus)
			}
		})
	}
}

func TestClientGRPCBidiStreaming(t *testing.T) {
	addr := clientGRPCServer(t)
	tr, _ := newClientTestTransport(t)
	pr, pw := io.Pipe()
	// grpc-go sends response headers with its first message, so the first
	// request message goes out while RoundTrip waits, as a proxied stream's
	// would.
	first := make(chan error, 1)
	go func() {
		_, err := pw.Write(clientGRPCFrame(t, wrapperspb.String("m0")))
		first <- err
	}()
	resp, err := tr.RoundTrip(clientGRPCRequest(addr, "/test.Echo/Bidi", pr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// Each reply is read before the next message is sent: the request body
	// is open throughout.
	for i := range 5 {
		msg := fmt.Sprintf("m%d", i)
		if i > 0 {
			if _, err := pw.Write(clientGRPCFrame(t, wrapperspb.String(msg))); err != nil {
				t.Fatal(err)
			}
		}
		var got wrapperspb.StringValue
		if err := clientGRPCRead(resp.Body, &got); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if got.Value != "echo:"+msg {
			t.Fatalf("reply %q, want echo:%s", got.Value, msg)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q %v", rest, err)
	}
	if st := resp.Trailer.Get("Grpc-Status"); st != "0" {
		t.Fatalf("grpc-status %q (%s)", st, resp.Trailer.Get("Grpc-Message"))
	}
}
