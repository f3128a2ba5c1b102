//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshscope/meshscope/demo/freeport"
)

// freeAddrs returns n distinct loopback addresses whose ports are free now
// (see package freeport for why they come from below the ephemeral range).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := freeport.Addrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// proc is a binary under test, its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProc starts bin; the test's cleanup stops it (SIGTERM, then SIGKILL)
// and prints the tail of its log if the test failed.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t, 15*time.Second)
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, logPath, p.tail(40))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILLs the process group.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(timeout):
	}
	t.Errorf("%s did not exit within %s of SIGTERM; killing it", p.name, timeout)
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// poll calls cond every 200ms until it reports true or timeout passes; the
// failure message carries cond's last description of what it saw. It fails
// early if one of the watched processes exits.
func poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, string), watch ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		for _, p := range watch {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited (%v); log:\n%s", what, p.name, p.err, p.tail(30))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches url and returns the status and body.
func get(rawURL string) (int, []byte, error) {
	res, err := httpClient.Get(rawURL)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// getJSON fetches url and decodes a 200 response into v.
func getJSON(rawURL string, v any) error {
	code, body, err := get(rawURL)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %.300s", rawURL, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decoding %.300s: %w", rawURL, body, err)
	}
	return nil
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, p *proc, rawURL string, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, p.name+" ready at "+rawURL, func() (bool, string) {
		code, body, err := get(rawURL)
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("status %d: %.200s", code, body)
	}, p)
}

// server is a running `meshscope server`.
type server struct {
	*proc
	http, otlpGRPC, otlpHTTP, data string
}

func (s *server) url(path string) string { return "http://" + s.http + path }

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	bin, _ := binaries(t)
	a := freeAddrs(t, 3)
	s := &server{http: a[0], otlpGRPC: a[1], otlpHTTP: a[2], data: t.TempDir()}
	s.proc = startProc(t, "meshscope-server", bin, append([]string{"server",
		"--data", s.data, "--http", s.http, "--otlp-grpc", s.otlpGRPC, "--otlp-http", s.otlpHTTP}, extra...)...)
	waitReady(t, s.proc, s.url("/ready"), 90*time.Second)
	return s
}

// startProxy starts meshscope-proxy with args plus a free admin address and
// waits for its /ready; it returns the process and the admin address.
func startProxy(t *testing.T, name string, args ...string) (*proc, string) {
	t.Helper()
	_, bin := binaries(t)
	admin := freeAddrs(t, 1)[0]
	p := startProc(t, name, bin, append(args, "--admin", admin)...)
	waitReady(t, p, "http://"+admin+"/ready", 60*time.Second)
	return p, admin
}

// app is a small backend that records the trace context it receives.
type app struct {
	addr string
	mu   sync.Mutex
	seen []string // traceparent of every request
}

func startApp(t *testing.T) *app {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Get("Traceparent"))
		a.mu.Unlock()
		if r.URL.Path == "/fail" {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello from the backend: %s\n", r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *app) traceparents() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// send makes a GET through addr with the given traceparent ("" = none).
func send(t *testing.T, addr, path, traceparent string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s through %s: %v", path, addr, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// promQuery runs an instant PromQL query and returns the result vector.
func promQuery(s *server, q string) ([]promSample, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := getJSON(s.url("/api/v1/query?query="+url.QueryEscape(q)), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: status %s: %s", q, r.Status, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", q, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix seconds, "value"]
}

func (s promSample) float() float64 {
	str, _ := s.Value[1].(string)
	var f float64
	fmt.Sscanf(str, "%g", &f)
	return f
}

// Jaeger JSON shapes (the subset the tests read).
type jaegerTraces struct {
	Data []jaegerTrace `json:"data"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	TraceID    string `json:"traceID"`
	SpanID     string `json:"spanID"`
	Operation  string `json:"operationName"`
	ProcessID  string `json:"processID"`
	References []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

// graph is the subset of topology.Graph the tests read.
type graph struct {
	Nodes []struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	} `json:"nodes"`
	Edges []struct {
		Source    string  `json:"source"`
		Target    string  `json:"target"`
		RPS       float64 `json:"rps"`
		ErrorRate float64 `json:"error_rate"`
	} `json:"edges"`
}

func (g graph) summary() string {
	var b bytes.Buffer
	b.WriteString("nodes:")
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, " %s(%s)", n.ID, n.Kind)
	}
	b.WriteString(" edges:")
	for _, e := range g.Edges {
		fmt.Fprintf(&b, " %s->%s", e.Source, e.Target)
	}
	return b.String()
}

// scrape reads a Prometheus text exposition and sums the samples of name
// whose labels contain every given label pair (`k="v"`).
func scrape(rawURL, name string, labels ...string) (float64, bool, error) {
	code, body, err := get(rawURL)
	if err != nil {
		return 0, false, err
	}
	if code != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s: status %d", rawURL, code)
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscanf(f[len(f)-1], "%g", &v); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found, nil
}
