package lifecycle

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder notes the order in which parts stop.
type recorder struct {
	mu    sync.Mutex
	order []string
}

func (r *recorder) part(name string, started *sync.WaitGroup) Runner {
	started.Add(1)
	return RunFunc(func(ctx context.Context) error {
		started.Done()
		<-ctx.Done()
		r.mu.Lock()
		r.order = append(r.order, name)
		r.mu.Unlock()
		return nil
	})
}

func TestGroupStopsInReverseOrder(t *testing.T) {
	var rec recorder
	var started sync.WaitGroup
	var g Group
	g.Add("store", rec.part("store", &started))
	g.Add("pipeline", rec.part("pipeline", &started))
	g.Add("receiver", rec.part("receiver", &started))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, nil) }()
	started.Wait()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("group did not stop")
	}
	if got := strings.Join(rec.order, ","); got != "receiver,pipeline,store" {
		t.Fatalf("stop order %s, want receiver,pipeline,store", got)
	}
}

func TestGroupStopsWhenAPartFails(t *testing.T) {
	var rec recorder
	var started sync.WaitGroup
	var g Group
	g.Add("store", rec.part("store", &started))
	boom := errors.New("listen tcp 127.0.0.1:7070: address already in use")
	g.Add("http", RunFunc(func(context.Context) error { return boom }))
	err := g.Run(context.Background(), nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "http: ") {
		t.Fatalf("Run error = %v, want the http part's error named", err)
	}
	if len(rec.order) != 1 {
		t.Fatalf("store not stopped: %v", rec.order)
	}
}

func TestGroupEarlyNilIsAnError(t *testing.T) {
	var g Group
	g.Add("quitter", RunFunc(func(context.Context) error { return nil }))
	if err := g.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "quitter stopped unexpectedly") {
		t.Fatalf("Run error = %v", err)
	}
}

func TestReady(t *testing.T) {
	r := NewReady()
	if r.IsSet() {
		t.Fatal("new latch is set")
	}
	r.Set()
	r.Set()
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Set")
	}
}

func TestListenNamesFlagAndAddress(t *testing.T) {
	ln, err := Listen("http", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen("http", ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "--http "+ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("error = %v, want flag, address and cause", err)
	}
}

func TestHTTPServerDrainsInFlight(t *testing.T) {
	ln, err := Listen("http", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inHandler := make(chan struct{})
	release := make(chan struct{})
	srv := &HTTPServer{Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		_, _ = w.Write([]byte("done"))
	})}, Listener: ln, Ready: NewReady()}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	<-srv.Ready.Done()
	respc := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			respc <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		respc <- string(b)
	}()
	<-inHandler
	cancel()
	close(release)
	if got := <-respc; got != "done" {
		t.Fatalf("in-flight request got %q, want done", got)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
