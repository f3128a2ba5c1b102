package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the load. Addr, Duration and (for constant rate) Rate
// are required.
type Config struct {
	// Addr is the host:port to connect to.
	Addr string
	// Host is the Host header (default: Addr).
	Host string
	// Path is the request target (default "/").
	Path string
	// Method is the HTTP method (default GET, or POST when RequestBodyBytes > 0).
	Method string
	// RequestBodyBytes is the size of a fixed request body (default 0: none).
	RequestBodyBytes int
	// Header holds extra request header lines ("Name: value").
	Header []string
	// Connections is the number of keep-alive connections (default 16).
	Connections int
	// Rate is the total requests per second of RunConstantRate.
	Rate float64
	// Duration is how long requests are recorded.
	Duration time.Duration
	// Warmup is sent before Duration starts and is not recorded (default 0).
	Warmup time.Duration
	// Timeout bounds one request (default 5 s); a timed-out request is an error.
	Timeout time.Duration
	// NewExchanger, when set, replaces the built-in HTTP/1.1 client: each
	// of the Connections gets its own Exchanger (one connection, one
	// request in flight), made before the run starts; Method, Path, Host,
	// Header and RequestBodyBytes are then the Exchanger's business. See
	// NewH2C and NewGRPCHealth.
	NewExchanger func(ctx context.Context) (Exchanger, error)
}

// Exchanger sends one request on its own connection and reads the whole
// response, for protocols other than the built-in HTTP/1.1 client.
type Exchanger interface {
	// Exchange returns the status (HTTP status; 200 for a gRPC OK) and
	// the response body bytes read.
	Exchange(ctx context.Context) (status, bodyBytes int, err error)
	Close() error
}

func (c *Config) defaults() error {
	if c.Addr == "" {
		return errors.New("loadgen: Addr is empty")
	}
	if c.Duration <= 0 {
		return fmt.Errorf("loadgen: Duration %v must be positive", c.Duration)
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Host == "" {
		c.Host = c.Addr
	}
	if c.Method == "" {
		c.Method = "GET"
		if c.RequestBodyBytes > 0 {
			c.Method = "POST"
		}
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.RequestBodyBytes < 0 {
		return fmt.Errorf("loadgen: RequestBodyBytes %d is negative", c.RequestBodyBytes)
	}
	return nil
}

func (c *Config) request() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshscope-loadgen\r\n", c.Method, c.Path, c.Host)
	for _, h := range c.Header {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	if c.RequestBodyBytes > 0 {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", c.RequestBodyBytes)
	}
	b.WriteString("\r\n")
	b.Write(bytes.Repeat([]byte{'x'}, c.RequestBodyBytes))
	return b.Bytes()
}

// Result is what one run measured.
type Result struct {
	// Requests is the number of successful (2xx) responses recorded.
	Requests uint64
	// Errors counts recorded requests that failed: I/O errors, timeouts and
	// non-2xx statuses.
	Errors uint64
	// FirstError describes the first error seen (empty when none).
	FirstError string
	// Elapsed is the recorded window (Duration, or longer if the last
	// responses came late).
	Elapsed time.Duration
	// ResponseBytes is the number of response body bytes read (recorded window).
	ResponseBytes uint64
	// Latency holds the latency of successful requests. Constant rate: from
	// the time the request was due (coordinated omission corrected) to the
	// last byte of the response. Closed loop: from send to last byte.
	Latency *Histogram
	// ServiceTime holds the time from actually writing the request to the
	// last byte of the response (uncorrected, for comparison).
	ServiceTime *Histogram
	// SendLag holds how late the generator itself sent requests on idle
	// connections (timer and scheduling delay; not charged to Latency).
	SendLag *Histogram
}

// Throughput is successful requests per second of the recorded window.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

type worker struct {
	cfg   *Config
	req   []byte
	ex    Exchanger // instead of conn, with Config.NewExchanger
	conn  net.Conn
	br    *bufio.Reader
	res   Result
	first string
}

func newWorker(cfg *Config, req []byte) *worker {
	return &worker{cfg: cfg, req: req, res: Result{Latency: &Histogram{}, ServiceTime: &Histogram{}, SendLag: &Histogram{}}}
}

func (w *worker) dial() error {
	if w.cfg.NewExchanger != nil {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
		defer cancel()
		ex, err := w.cfg.NewExchanger(ctx)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", w.cfg.Addr, err)
		}
		w.ex = ex
		return nil
	}
	c, err := net.DialTimeout("tcp", w.cfg.Addr, w.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("dial %s: %w", w.cfg.Addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	w.conn = c
	if w.br == nil {
		w.br = bufio.NewReaderSize(c, 32<<10)
	} else {
		w.br.Reset(c)
	}
	return nil
}

func (w *worker) close() {
	if w.ex != nil {
		_ = w.ex.Close()
		w.ex = nil
	}
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
}

// do sends one request and reads the whole response. It returns the
// status code, the body size, and whether the connection may be reused.
func (w *worker) do() (status int, body int, err error) {
	if w.cfg.NewExchanger != nil {
		if w.ex == nil {
			if err := w.dial(); err != nil {
				return 0, 0, err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
		defer cancel()
		return w.ex.Exchange(ctx)
	}
	if w.conn == nil {
		if err := w.dial(); err != nil {
			return 0, 0, err
		}
	}
	_ = w.conn.SetDeadline(time.Now().Add(w.cfg.Timeout))
	if _, err := w.conn.Write(w.req); err != nil {
		w.close()
		return 0, 0, fmt.Errorf("write request: %w", err)
	}
	status, body, keep, err := readResponse(w.br, w.cfg.Method == "HEAD")
	if err != nil || !keep {
		w.close()
	}
	return status, body, err
}

func (w *worker) fail(err error) {
	w.res.Errors++
	if w.first == "" {
		w.first = err.Error()
	}
}

// readResponse reads one HTTP/1.x response, discarding the body.
func readResponse(br *bufio.Reader, head bool) (status, body int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, fmt.Errorf("read status line: %w", err)
	}
	s := string(bytes.TrimRight(line, "\r\n"))
	proto, rest, ok := strings.Cut(s, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(rest) < 3 {
		return 0, 0, false, fmt.Errorf("malformed status line %q", s)
	}
	status, err = strconv.Atoi(rest[:3])
	if err != nil {
		return 0, 0, false, fmt.Errorf("malformed status line %q", s)
	}
	keep = proto == "HTTP/1.1"
	contentLength, chunked := -1, false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return status, 0, false, fmt.Errorf("read header: %w", err)
		}
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		name, val, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, 0, false, fmt.Errorf("malformed header line %q", h)
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(val))
			if err != nil || n < 0 {
				return status, 0, false, fmt.Errorf("bad Content-Length %q", val)
			}
			contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			v := bytes.ToLower(val)
			if bytes.Contains(v, []byte("close")) {
				keep = false
			} else if bytes.Contains(v, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case head || status == 204 || status == 304 || (status >= 100 && status < 200):
		return status, 0, keep, nil
	case chunked:
		n, err := discardChunked(br)
		return status, n, keep && err == nil, err
	case contentLength >= 0:
		n, err := br.Discard(contentLength)
		if err != nil {
			return status, n, false, fmt.Errorf("read body: %w", err)
		}
		return status, n, keep, nil
	default:
		n, err := io.Copy(io.Discard, br)
		return status, int(n), false, err
	}
}

func discardChunked(br *bufio.Reader) (int, error) {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, fmt.Errorf("read chunk size: %w", err)
		}
		sz, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(sz)), 16, 64)
		if err != nil || n < 0 {
			return total, fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers
				line, err := br.ReadSlice('\n')
				if err != nil {
					return total, fmt.Errorf("read trailer: %w", err)
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return total, nil
				}
			}
		}
		d, err := br.Discard(int(n) + 2)
		total += d - 2
		if err != nil {
			return total, fmt.Errorf("read chunk: %w", err)
		}
	}
}

// RunConstantRate sends cfg.Rate requests per second in total for
// cfg.Warmup+cfg.Duration over cfg.Connections connections and records the
// last cfg.Duration. Each connection sends every Connections/Rate seconds,
// connections staggered evenly. It stops early when ctx is cancelled.
func RunConstantRate(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Rate <= 0 {
		return nil, fmt.Errorf("loadgen: Rate %v must be positive", cfg.Rate)
	}
	interval := time.Duration(float64(cfg.Connections) / cfg.Rate * float64(time.Second))
	return run(ctx, cfg, func(w *worker, idx int, start, recordFrom, end time.Time) {
		prevDone := time.Time{}
		due := start.Add(time.Duration(float64(idx) / cfg.Rate * float64(time.Second)))
		for ; due.Before(end); due = due.Add(interval) {
			if ctx.Err() != nil {
				return
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			sent := time.Now()
			// Coordinated omission: if the previous response held this
			// connection past the due time, the wait is the server's and
			// counts from the due time; otherwise any lateness is the
			// generator's own and is recorded apart.
			from := sent
			busy := prevDone.After(due)
			if busy {
				from = due
			}
			status, n, err := w.do()
			done := time.Now()
			prevDone = done
			if due.Before(recordFrom) {
				continue
			}
			if !busy {
				w.res.SendLag.Record(sent.Sub(due))
			}
			w.record(status, n, err, done.Sub(from), done.Sub(sent))
		}
	})
}

// RunClosedLoop sends requests back to back on cfg.Connections connections
// for cfg.Warmup+cfg.Duration and records the last cfg.Duration; Rate is
// ignored. Throughput() is the maximum the target sustained.
func RunClosedLoop(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return run(ctx, cfg, func(w *worker, _ int, start, recordFrom, end time.Time) {
		for ctx.Err() == nil {
			sent := time.Now()
			if !sent.Before(end) {
				return
			}
			status, n, err := w.do()
			done := time.Now()
			if sent.Before(recordFrom) {
				continue
			}
			w.record(status, n, err, done.Sub(sent), done.Sub(sent))
		}
	})
}

func (w *worker) record(status, n int, err error, latency, service time.Duration) {
	switch {
	case err != nil:
		w.fail(err)
	case status < 200 || status > 299:
		w.fail(fmt.Errorf("HTTP status %d", status))
	default:
		w.res.Requests++
		w.res.ResponseBytes += uint64(n)
		w.res.Latency.Record(latency)
		w.res.ServiceTime.Record(service)
	}
}

func run(ctx context.Context, cfg Config, loop func(w *worker, idx int, start, recordFrom, end time.Time)) (*Result, error) {
	req := cfg.request()
	workers := make([]*worker, cfg.Connections)
	for i := range workers {
		workers[i] = newWorker(&cfg, req)
		if err := workers[i].dial(); err != nil {
			for _, w := range workers[:i] {
				w.close()
			}
			return nil, fmt.Errorf("loadgen: %w", err)
		}
	}
	start := time.Now().Add(5 * time.Millisecond)
	recordFrom := start.Add(cfg.Warmup)
	end := recordFrom.Add(cfg.Duration)
	var wg sync.WaitGroup
	var lastDone atomic.Int64
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			loop(w, i, start, recordFrom, end)
			t := time.Now().UnixNano()
			for {
				old := lastDone.Load()
				if t <= old || lastDone.CompareAndSwap(old, t) {
					break
				}
			}
		}()
	}
	wg.Wait()
	out := &Result{Latency: &Histogram{}, ServiceTime: &Histogram{}, SendLag: &Histogram{}}
	for _, w := range workers {
		out.Requests += w.res.Requests
		out.Errors += w.res.Errors
		out.ResponseBytes += w.res.ResponseBytes
		out.Latency.Merge(w.res.Latency)
		out.ServiceTime.Merge(w.res.ServiceTime)
		out.SendLag.Merge(w.res.SendLag)
		if out.FirstError == "" {
			out.FirstError = w.first
		}
	}
	finished := time.Unix(0, lastDone.Load())
	out.Elapsed = cfg.Duration
	if finished.After(end) {
		out.Elapsed = finished.Sub(recordFrom)
	}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("loadgen: %w", err)
	}
	return out, nil
}
