package h2

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// grpcTestService echoes: unary calls return the request's payload,
// FullDuplexCall answers each message as it arrives.
type grpcTestService struct {
	testpb.UnimplementedTestServiceServer
}

func (grpcTestService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if req.ResponseStatus != nil {
		return nil, status.Error(codes.Code(req.ResponseStatus.Code), req.ResponseStatus.Message)
	}
	return &testpb.SimpleResponse{Payload: req.Payload}, nil
}

func (grpcTestService) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

// TestServerGRPCStreamingAndLargeMessages runs grpc-go's client against
// grpc-go's ServeHTTP handler on Server: 4 MB messages both ways (grpc-go
// starts with 64 KiB stream windows, so our sending waits on its
// WINDOW_UPDATEs), an error status in trailers, and a bidirectional stream.
func TestServerGRPCStreamingAndLargeMessages(t *testing.T) {
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20))
	testpb.RegisterTestServiceServer(gs, grpcTestService{})
	env := startServer(t, gs)
	cc, err := grpc.NewClient(env.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	big := bytes.Repeat([]byte("grpc"), 1<<20)
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: big}})
	if err != nil || !bytes.Equal(resp.GetPayload().GetBody(), big) {
		t.Fatalf("large unary: %d bytes, %v", len(resp.GetPayload().GetBody()), err)
	}
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "no"}})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "no" {
		t.Errorf("status %v", err)
	}

	stream, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		body := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatal(err)
		}
		got, err := stream.Recv()
		if err != nil || !bytes.Equal(got.GetPayload().GetBody(), body) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("end of stream: %v", err)
	}
}
