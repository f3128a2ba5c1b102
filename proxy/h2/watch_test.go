package h2

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestForwardedStreamEndsWithItsRequest: a handler of Server that forwards
// its request with Transport (as the proxy does) has the upstream stream
// reset when the downstream request's context ends. The request context
// alone registers the client stream with the server stream (watch); a
// context of its own (here a timeout) goes through context.AfterFunc.
// Both must reach the upstream handler, and a forward that completes
// leaves no registration behind.
func TestForwardedStreamEndsWithItsRequest(t *testing.T) {
	upstreamDone := make(chan error, 1)
	upstream := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			upstreamDone <- r.Context().Err()
		case <-time.After(10 * time.Second):
			upstreamDone <- nil
		}
	}))
	tr := &Transport{}
	defer tr.Close()
	type forward struct {
		watched bool // the client stream registered with the server stream
		err     error
	}
	forwarded := make(chan forward, 1)
	proxy := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Header.Get("X-Own-Timeout") != "" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
		}
		out, _ := http.NewRequestWithContext(ctx, "GET", "http://"+upstream.addr+r.URL.Path, nil)
		resp, err := tr.RoundTrip(out)
		if err != nil {
			forwarded <- forward{err: err}
			return
		}
		defer resp.Body.Close()
		// (A response that ended with its headers has left already.)
		st := ctx.Value(serverStreamKey{}).(*serverStream)
		watched := st.watcher.Load() != nil
		w.WriteHeader(resp.StatusCode)
		w.(http.Flusher).Flush()
		_, err = io.Copy(w, resp.Body)
		if r.URL.Path == "/quick" {
			// The upstream stream ended: nothing is registered any more.
			if st.watcher.Load() != nil {
				t.Error("registration left after the upstream stream ended")
			}
		}
		forwarded <- forward{watched: watched, err: err}
	}))

	// waitReset waits for the upstream handler to see its stream end.
	waitReset := func(t *testing.T, after string) {
		t.Helper()
		select {
		case err := <-upstreamDone:
			if err == nil {
				t.Fatalf("upstream handler ran out its 10 s: %s did not reset the upstream stream", after)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("upstream stream not reset 5 s after %s", after)
		}
	}
	t.Run("complete", func(t *testing.T) {
		resp, err := h2cClient(t).Get("http://" + proxy.addr + "/quick")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f := <-forwarded
		if string(b) != "ok" || f.err != nil {
			t.Fatalf("body %q, forward %+v; want ok, no error", b, f)
		}
	})
	t.Run("client cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+proxy.addr+"/hang", nil)
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		resp.Body.Close()
		waitReset(t, "the client canceled")
		if f := <-forwarded; !f.watched {
			t.Errorf("forward %+v: not registered with the server stream", f)
		}
	})
	t.Run("own timeout", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+proxy.addr+"/hang", nil)
		req.Header.Set("X-Own-Timeout", "1")
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		waitReset(t, "the forward's own timeout")
		if f := <-forwarded; f.watched {
			t.Errorf("forward %+v: a context with its own timeout registered with the server stream", f)
		}
	})
}
