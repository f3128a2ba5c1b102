package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Listen opens a TCP listener. flag names the setting the address came from,
// so "address already in use" tells the user which flag to change.
func Listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, addr, err)
	}
	return ln, nil
}

// HTTPServer serves an http.Server on an open listener as a Runner. On
// cancel it stops accepting and waits up to DrainTimeout for in-flight
// requests (long-lived ones such as WebSockets are closed after that).
type HTTPServer struct {
	Server       *http.Server
	Listener     net.Listener
	DrainTimeout time.Duration // default 10 s
	Ready        *Ready        // set once serving; may be nil
}

// Run implements Runner.
func (s *HTTPServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(s.Listener) }()
	if s.Ready != nil {
		s.Ready.Set()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving %s: %w", s.Listener.Addr(), err)
	case <-ctx.Done():
	}
	drain := s.DrainTimeout
	if drain <= 0 {
		drain = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := s.Server.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = s.Server.Close()
		err = nil
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
