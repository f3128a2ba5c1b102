package collector

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/meshscope/meshscope/collector/consumer"
)

// memoryPerBodyByte estimates the memory one request holds per byte of its
// (decompressed) body while it is read, decoded, translated and waits for
// its acknowledgement: the body itself, the decoded protobuf (about 4×),
// the translated spans or samples (about 1.6×) and the growth slack of the
// read buffer. Reservations against max_inflight_bytes are body bytes
// times this factor, so max_inflight_bytes bounds memory, not wire bytes.
const memoryPerBodyByte = 8

// bodyGrace is how long a body may take to start flowing before the
// minimum rate applies (as Kestrel's MinRequestBodyDataRate grace period).
const bodyGrace = 5 * time.Second

// memLimiter bounds the estimated memory of the ingest requests in progress
// (max_inflight_bytes), shared by OTLP/HTTP, OTLP/gRPC and remote write.
// Reservations never wait: a request that does not fit is refused as
// overloaded (429 / RESOURCE_EXHAUSTED) and retried by its client.
type memLimiter struct {
	max  int64
	used atomic.Int64
}

// reserve takes n bytes if they fit; a lone request always fits, so one
// request larger than the limit still makes progress.
func (l *memLimiter) reserve(n int64) bool {
	for {
		u := l.used.Load()
		if u > 0 && u+n > l.max {
			return false
		}
		if l.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (l *memLimiter) release(n int64) { l.used.Add(-n) }

// full reports whether nothing more fits.
func (l *memLimiter) full() bool { return l.used.Load() >= l.max }

// reservation is one request's share of the limiter; done releases
// everything and may be called again. Safe for concurrent use (a gRPC
// request's body is read on one goroutine and decoded on another).
type reservation struct {
	l *memLimiter
	n atomic.Int64
}

// grow reserves the memory of n more body bytes.
func (r *reservation) grow(bodyBytes int64) error {
	n := bodyBytes * memoryPerBodyByte
	if !r.l.reserve(n) {
		return fmt.Errorf("ingest memory limit: %d of max_inflight_bytes=%d in use, a request of %d more refused: %w",
			r.l.used.Load(), r.l.max, n, consumer.ErrOverloaded)
	}
	r.n.Add(n)
	return nil
}

// growTo makes the reservation cover at least bodyBytes (a gRPC message
// that was compressed on the wire is reserved again by its decompressed
// size).
func (r *reservation) growTo(bodyBytes int64) error {
	if more := bodyBytes - r.n.Load()/memoryPerBodyByte; more > 0 {
		return r.grow(more)
	}
	return nil
}

func (r *reservation) done() {
	r.l.release(r.n.Swap(0))
}

// accountingReader reserves memory for the bytes it produces beyond the
// covered ones (the declared Content-Length reserved up front); the
// collector puts it on the decompressed stream, so a gzip body is counted
// by its decompressed size as it inflates.
type accountingReader struct {
	r       io.Reader
	res     *reservation
	covered int64
	read    int64
}

func (a *accountingReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.read += int64(n)
	if a.read > a.covered {
		if gerr := a.res.grow(a.read - a.covered); gerr != nil {
			return n, gerr
		}
		a.covered = a.read
	}
	return n, err
}

// errSlowBody marks a body that did not arrive in time.
type errSlowBody struct {
	read    int64
	elapsed time.Duration
	minRate int64
	timeout time.Duration
}

func (e errSlowBody) Error() string {
	return fmt.Sprintf("request body too slow: %d bytes in %s (minimum %d bytes/s after %s, at most body_timeout=%s)",
		e.read, e.elapsed.Round(time.Millisecond), e.minRate, bodyGrace, e.timeout)
}

// deadlineReader reads an HTTP request body under a moving read deadline:
// after bodyGrace the body must keep arriving at min_body_rate on average,
// and all of it within body_timeout. A client that stalls is cut with
// errSlowBody, and its reservation goes back to the limiter.
type deadlineReader struct {
	r        io.Reader
	rc       *http.ResponseController
	start    time.Time
	minRate  int64
	noRate   bool // only body_timeout applies (waiting for a gRPC message's prefix)
	timeout  time.Duration
	read     int64
	deadline time.Time
}

func newDeadlineReader(w http.ResponseWriter, body io.Reader, minRate int64, timeout time.Duration) *deadlineReader {
	return &deadlineReader{r: body, rc: http.NewResponseController(w), start: time.Now(), minRate: minRate, timeout: timeout}
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := d.start.Add(bodyGrace + time.Duration(float64(d.read)/float64(d.minRate)*float64(time.Second)))
	if last := d.start.Add(d.timeout); d.noRate || dl.After(last) {
		dl = last
	}
	if !dl.Equal(d.deadline) {
		_ = d.rc.SetReadDeadline(dl) // unsupported only on hijacked or test writers
		d.deadline = dl
	}
	n, err := d.r.Read(p)
	d.read += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errSlowBody{read: d.read, elapsed: time.Since(d.start), minRate: d.minRate, timeout: d.timeout}
	}
	return n, err
}

// restart starts the clock again, with the minimum rate.
func (d *deadlineReader) restart() {
	d.start, d.read, d.noRate = time.Now(), 0, false
}

// finish lifts the deadline: the connection stays usable while the request
// waits for its acknowledgement and for the next request.
func (d *deadlineReader) finish() {
	if !d.deadline.IsZero() {
		_ = d.rc.SetReadDeadline(time.Time{})
	}
}
