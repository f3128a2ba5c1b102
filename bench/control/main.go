// Command control benchmarks the control plane of a real `meshscope
// server`: how long an applied policy takes to reach 100 connected proxy
// streams (WebSocket clients speaking control/wire), and the server's
// memory and push time when 1,000 services, each with a Route and a
// Resilience document (five policies per service: weighted split, timeout
// with retries, circuit breaker, outlier detection, rate limit), are
// applied at once and pushed to 1,000 connected proxies.
//
//	go run ./bench/control [-quick] [-clients 100] [-rounds 30] [-services 1000]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
)

var (
	quick    = flag.Bool("quick", false, "short run (100 clients, 5 rounds, 200 services)")
	clients  = flag.Int("clients", 100, "connected proxy streams for the propagation test")
	rounds   = flag.Int("rounds", 30, "applies measured in the propagation test")
	services = flag.Int("services", 1000, "services (and proxies) in the scale test")
	out      = flag.String("out", "control", "result file, or a part name for bench/results/<part>[.quick].json")
)

func main() {
	flag.Parse()
	if *quick {
		*rounds, *services = 5, 200
	}
	root, err := report.ModuleRoot()
	if err != nil {
		log.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "meshscope-bench-control-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "meshscope")
	build := exec.Command("go", "build", "-o", bin, "./cmd/meshscope")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("building meshscope: %v", err)
	}

	r := report.New("control")
	r.Title = "Control plane: policy propagation and scale"
	r.Quick = *quick

	// Propagation to N streams.
	srv := startServer(bin, filepath.Join(tmp, "prop"))
	lat, err := propagation(srv, *clients, *rounds)
	srv.stop()
	if err != nil {
		log.Fatalf("propagation: %v", err)
	}
	t := r.AddTable(fmt.Sprintf("Apply → snapshot received, %d connected proxy streams", *clients),
		"applies", "deliveries", "p50 ms", "p90 ms", "p99 ms", "max ms")
	t.AddRow(fmt.Sprint(*rounds), fmt.Sprint(len(lat)), report.Num(pct(lat, 0.5)), report.Num(pct(lat, 0.9)), report.Num(pct(lat, 0.99)), report.Num(pct(lat, 1)))
	t.Note("Time from sending POST /api/mesh/v1/apply (one Route changed, fsynced) until each stream has read the snapshot carrying the new version; clients run in the benchmark process on the same machine.")
	r.AtMost(fmt.Sprintf("propagation p99 to %d proxies", *clients), 1000, pct(lat, 0.99), "ms")

	// Scale: services × 5 policies, one proxy per service.
	srv = startServer(bin, filepath.Join(tmp, "scale"))
	sc, err := scale(srv, *services)
	srv.stop()
	if err != nil {
		log.Fatalf("scale: %v", err)
	}
	t = r.AddTable("Scale: every service with a Route and a Resilience document, one proxy per service calling 5 others",
		"services", "documents", "YAML MB", "apply ms", "all proxies updated ms", "snapshot KB per proxy", "server RSS before MB", "server peak RSS MB")
	t.AddRow(fmt.Sprint(*services), fmt.Sprint(2**services), report.Num(sc.yamlMB), report.Num(sc.applyMS), report.Num(sc.pushMS),
		report.Num(sc.snapshotKB), report.Num(sc.rssBeforeMB), report.Num(sc.peakMB))
	t.Note("Five policies per service in two documents (a service has at most one Route and one Resilience): weighted split v1/v2, timeout with retries, circuit breaker, outlier detection, rate limit. Peak RSS is the server's VmHWM (the whole server: TSDB, trace store, UI included).")
	r.AtMost(fmt.Sprintf("server peak RSS, %d services × 5 policies pushed to %d proxies", *services, *services), 200, sc.peakMB, "MB")
	r.Note("load average at the end: %s", report.DetectMachine().LoadAverage)
	path, err := report.Write(*out, r)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", path)
}

type server struct {
	cmd  *exec.Cmd
	http string
	done chan struct{}
}

func startServer(bin, data string) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "server", "--data", data, "--http", addr, "--otlp-grpc", "off", "--otlp-http", "off", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	s := &server{cmd: cmd, http: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatal("server not ready")
	return nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) apply(body []byte) (uint64, error) {
	res, err := http.Post("http://"+s.http+"/api/mesh/v1/apply", "application/yaml", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("apply: %d %s", res.StatusCode, b)
	}
	var v struct {
		Version uint64 `json:"version"`
	}
	return v.Version, json.Unmarshal(b, &v)
}

// client is one proxy stream; it records when each version first arrived.
type client struct {
	ws      *websocket.Conn
	mu      sync.Mutex
	arrived map[uint64]time.Time
	bytes   int
	any     chan struct{}
}

func connect(s *server, h wire.Hello) (*client, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	ws, _, err := d.Dial("ws://"+s.http+wire.Path, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.MaxServerMessage)
	h.Protocol, h.Mode = wire.Protocol, policy.ModeObserve
	b, _ := wire.Encode(&h)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, err
	}
	c := &client{ws: ws, arrived: map[uint64]time.Time{}, any: make(chan struct{})}
	go func() {
		first := true
		for {
			_, data, err := ws.ReadMessage()
			now := time.Now()
			if err != nil {
				return
			}
			var head struct {
				Type    string `json:"type"`
				Version uint64 `json:"version"`
			}
			if json.Unmarshal(data, &head) != nil || head.Type != wire.TypeSnapshot {
				continue
			}
			c.mu.Lock()
			if _, ok := c.arrived[head.Version]; !ok {
				c.arrived[head.Version] = now
			}
			c.bytes = len(data)
			c.mu.Unlock()
			if first {
				close(c.any)
				first = false
			}
		}
	}()
	return c, nil
}

func (c *client) at(v uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.arrived[v]
	return t, ok
}

func waitAll(cs []*client, v uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, c := range cs {
		for {
			if _, ok := c.at(v); ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("version %d not received by every client within %s", v, timeout)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

func routeDoc(svc string, w1 int) string {
	return fmt.Sprintf("kind: Route\nname: %s-route\nservice: %s\nmode: enforce\ntimeout: 2s\nretries: {attempts: 2, per_try_timeout: 500ms}\nrules:\n  - backends:\n      - {version: v1, weight: %d}\n      - {version: v2, weight: %d}\n", svc, svc, w1, 100-w1)
}

func resilienceDoc(svc string) string {
	return fmt.Sprintf("kind: Resilience\nname: %s-resilience\nservice: %s\ncircuit_breaker: {max_requests: 500}\noutlier_detection: {consecutive_5xx: 5}\nrate_limit: {requests_per_second: 1000}\n", svc, svc)
}

func propagation(s *server, n, rounds int) ([]float64, error) {
	var cs []*client
	for i := range n {
		c, err := connect(s, wire.Hello{ProxyID: fmt.Sprintf("web-%d", i), Service: "web", Version: "v1",
			Inbound: []string{fmt.Sprintf("127.0.0.1:%d", 20000+i)}, Upstreams: []string{"inventory"}})
		if err != nil {
			return nil, err
		}
		defer c.ws.Close()
		cs = append(cs, c)
	}
	for _, c := range cs {
		select {
		case <-c.any:
		case <-time.After(60 * time.Second):
			return nil, fmt.Errorf("no first snapshot")
		}
	}
	time.Sleep(time.Second) // let the joins settle: measure steady-state applies
	var lat []float64
	for r := range rounds {
		t0 := time.Now()
		v, err := s.apply([]byte(routeDoc("inventory", 50+r%50)))
		if err != nil {
			return nil, err
		}
		if err := waitAll(cs, v, 60*time.Second); err != nil {
			return nil, err
		}
		for _, c := range cs {
			t, _ := c.at(v)
			lat = append(lat, float64(t.Sub(t0).Microseconds())/1000)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return lat, nil
}

type scaleResult struct {
	yamlMB, applyMS, pushMS, snapshotKB, rssBeforeMB, peakMB float64
}

func scale(s *server, n int) (scaleResult, error) {
	var res scaleResult
	svc := func(i int) string { return fmt.Sprintf("svc-%04d", i%n) }
	var cs []*client
	for i := range n {
		var ups []string
		for k := 1; k <= 5; k++ {
			ups = append(ups, svc(i+k))
		}
		c, err := connect(s, wire.Hello{ProxyID: "p-" + svc(i), Service: svc(i), Version: []string{"v1", "v2"}[i%2],
			Inbound: []string{fmt.Sprintf("127.0.0.%d:%d", 1+i/20000, 10000+i%20000)}, Upstreams: ups})
		if err != nil {
			return res, fmt.Errorf("client %d: %w", i, err)
		}
		defer c.ws.Close()
		cs = append(cs, c)
	}
	for _, c := range cs {
		<-c.any
	}
	time.Sleep(time.Second)
	pid := s.cmd.Process.Pid
	if rss, err := procstat.RSS(pid); err == nil {
		res.rssBeforeMB = float64(rss) / (1 << 20)
	}
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(routeDoc(svc(i), 90))
		b.WriteString("---\n")
		b.WriteString(resilienceDoc(svc(i)))
	}
	body := []byte(b.String())
	res.yamlMB = float64(len(body)) / (1 << 20)
	t0 := time.Now()
	v, err := s.apply(body)
	if err != nil {
		return res, err
	}
	res.applyMS = float64(time.Since(t0).Microseconds()) / 1000
	if err := waitAll(cs, v, 5*time.Minute); err != nil {
		return res, err
	}
	var last time.Time
	var sizes []float64
	for _, c := range cs {
		t, _ := c.at(v)
		if t.After(last) {
			last = t
		}
		c.mu.Lock()
		sizes = append(sizes, float64(c.bytes)/1024)
		c.mu.Unlock()
	}
	res.pushMS = float64(last.Sub(t0).Microseconds()) / 1000
	res.snapshotKB = pct(sizes, 0.5)
	peak, err := procstat.PeakRSS(pid)
	if err != nil {
		return res, err
	}
	res.peakMB = float64(peak) / (1 << 20)
	return res, nil
}

func pct(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(q*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}
