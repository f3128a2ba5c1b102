package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Runner is a long-running part. Run blocks until ctx is cancelled and the
// part has drained, then returns nil (or the error that stopped it early).
type Runner interface {
	Run(ctx context.Context) error
}

// RunFunc adapts a function to Runner.
type RunFunc func(ctx context.Context) error

// Run calls f.
func (f RunFunc) Run(ctx context.Context) error { return f(ctx) }

type member struct {
	name   string
	runner Runner
}

// Group runs parts together. Add them sinks first; Run stops them in reverse
// order of Add, waiting for each to return before cancelling the one added
// before it. The zero value is ready to use.
type Group struct {
	members []member
}

// Add appends a part. name appears in logs and errors.
func (g *Group) Add(name string, r Runner) { g.members = append(g.members, member{name, r}) }

// Run starts every part and blocks until ctx is cancelled or any part returns
// (an error or early nil stops the whole group). Parts are then stopped in
// reverse order. It returns the first error that stopped the group, wrapped
// with the part's name, joined with any errors from stopping.
func (g *Group) Run(ctx context.Context, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	type result struct {
		idx int
		err error
	}
	n := len(g.members)
	cancels := make([]context.CancelFunc, n)
	done := make([]chan error, n)
	first := make(chan result, n)
	for i, m := range g.members {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[i] = cancel
		done[i] = make(chan error, 1)
		go func(i int, m member) {
			err := m.runner.Run(cctx)
			done[i] <- err
			first <- result{i, err}
		}(i, m)
	}
	var cause error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "reason", context.Cause(ctx))
	case r := <-first:
		if r.err != nil {
			cause = fmt.Errorf("%s: %w", g.members[r.idx].name, r.err)
		} else {
			cause = fmt.Errorf("%s stopped unexpectedly", g.members[r.idx].name)
		}
		logger.Error("part stopped, shutting down", "part", g.members[r.idx].name, "err", r.err)
	}
	var stopErrs []error
	for i := n - 1; i >= 0; i-- {
		cancels[i]()
		if err := <-done[i]; err != nil && !errors.Is(err, context.Canceled) && cause == nil {
			stopErrs = append(stopErrs, fmt.Errorf("stopping %s: %w", g.members[i].name, err))
		}
		logger.Debug("stopped", "part", g.members[i].name)
	}
	return errors.Join(append([]error{cause}, stopErrs...)...)
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM. A second
// signal exits the process at once with status 1.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	var once sync.Once
	go func() {
		for s := range ch {
			first := false
			once.Do(func() { first = true })
			if !first {
				os.Exit(1)
			}
			cancel(fmt.Errorf("received %s", s))
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(context.Canceled) }
}

// Ready is a latch a part closes once it takes traffic. The zero value is
// not ready; use NewReady.
type Ready struct {
	once sync.Once
	ch   chan struct{}
}

// NewReady returns an unset latch.
func NewReady() *Ready { return &Ready{ch: make(chan struct{})} }

// Set marks ready; later calls do nothing.
func (r *Ready) Set() { r.once.Do(func() { close(r.ch) }) }

// Done is closed once Set was called.
func (r *Ready) Done() <-chan struct{} { return r.ch }

// IsSet reports whether Set was called.
func (r *Ready) IsSet() bool {
	select {
	case <-r.ch:
		return true
	default:
		return false
	}
}
