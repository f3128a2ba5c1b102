// Command scaleout benchmarks a control plane of several `meshscope
// server` processes over a shared etcd (--state-store etcd): a 3-member
// etcd cluster (Debian etcd-server) on loopback, three servers, and proxy
// streams (WebSocket clients speaking control/wire) spread across them.
// It measures how long a policy applied on one server takes to reach the
// streams of every server (median, p99), and how long the controllers'
// leadership takes to move when the leading server is killed (kill -9).
//
//	go run ./bench/scaleout [-quick] [-clients 30] [-rounds 40]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
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

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/ca"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/demo/freeport"
)

var (
	quick   = flag.Bool("quick", false, "short run (10 rounds)")
	clients = flag.Int("clients", 30, "proxy streams per server")
	rounds  = flag.Int("rounds", 40, "applies measured")
	out     = flag.String("out", "scaleout", "result file, or a part name for bench/results/<part>[.quick].json")
)

func main() {
	flag.Parse()
	if *quick {
		*rounds = 10
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		log.Fatal("etcd not found: apt-get install etcd-server (make bench-deps)")
	}
	root, err := report.ModuleRoot()
	if err != nil {
		log.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "meshscope-bench-scaleout-")
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

	endpoints, stopEtcd := startEtcd(etcdBin, tmp)
	defer stopEtcd()
	args := []string{"--state-store", "etcd", "--etcd-endpoints", endpoints}
	first := startServer(bin, filepath.Join(tmp, "s0"), args...)
	args = append(args, "--ca-cert", filepath.Join(tmp, "s0", "ca", ca.CertName), "--ca-key", filepath.Join(tmp, "s0", "ca", ca.KeyName))
	servers := []*server{first, startServer(bin, filepath.Join(tmp, "s1"), args...), startServer(bin, filepath.Join(tmp, "s2"), args...)}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()

	byServer := make([][]*client, len(servers))
	for i, s := range servers {
		for j := range *clients {
			c, err := connect(s, fmt.Sprintf("s%d-p%d", i, j))
			if err != nil {
				log.Fatalf("connecting to server %d: %v", i, err)
			}
			byServer[i] = append(byServer[i], c)
		}
	}
	time.Sleep(time.Second) // first snapshots

	// Apply on server 0; time until each stream has the version.
	var same, other []float64
	for round := range *rounds {
		body := fmt.Appendf(nil, "kind: Route\nname: bench\nservice: bench\ntimeout: %dms\n", 1000+round)
		start := time.Now()
		v, err := servers[0].apply(body)
		if err != nil {
			log.Fatalf("apply: %v", err)
		}
		for i, cs := range byServer {
			for _, c := range cs {
				at, err := c.wait(v, 10*time.Second)
				if err != nil {
					log.Fatalf("server %d: %v", i, err)
				}
				ms := float64(at.Sub(start).Microseconds()) / 1000
				if i == 0 {
					same = append(same, ms)
				} else {
					other = append(other, ms)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	r := report.New("scaleout")
	r.Title = "Scale-out control plane: three servers over etcd"
	r.Quick = *quick
	t := r.AddTable(fmt.Sprintf("Apply on one server → snapshot received, %d proxy streams per server", *clients),
		"streams on", "applies", "deliveries", "p50 ms", "p90 ms", "p99 ms", "max ms")
	t.AddRow("the applying server", fmt.Sprint(*rounds), fmt.Sprint(len(same)), report.Num(pct(same, 0.5)), report.Num(pct(same, 0.9)), report.Num(pct(same, 0.99)), report.Num(pct(same, 1)))
	t.AddRow("the two other servers", fmt.Sprint(*rounds), fmt.Sprint(len(other)), report.Num(pct(other, 0.5)), report.Num(pct(other, 0.9)), report.Num(pct(other, 0.99)), report.Num(pct(other, 1)))
	t.Note("Time from sending POST /api/mesh/v1/apply to server 0 (the new version written to etcd with a create-only transaction) until each stream has read the snapshot carrying it; the other servers learn the version from an etcd watch. etcd 3.4 (Debian), 3 members on loopback; clients run in the benchmark process.")
	r.AtMost("cross-server propagation p99", 1000, pct(other, 0.99), "ms")

	// Failover: kill -9 the leader, time until another server leads.
	ft := r.AddTable("Leader killed (kill -9) → another server leads", "kill", "servers left", "takeover s")
	var worst float64
	alive := servers
	for k := 1; len(alive) > 1 && k <= 2; k++ {
		leader, rest := findLeader(alive)
		if leader == nil {
			log.Fatal("no leader")
		}
		_ = leader.cmd.Process.Signal(syscall.SIGKILL)
		<-leader.done
		killed := time.Now()
		var took float64
		for {
			if l, _ := findLeader(rest); l != nil {
				took = time.Since(killed).Seconds()
				break
			}
			if time.Since(killed) > 60*time.Second {
				log.Fatal("no new leader within 60 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		worst = max(worst, took)
		ft.AddRow(fmt.Sprint(k), fmt.Sprint(len(rest)), report.Num(took))
		alive = rest
	}
	ft.Note("The leader holds an etcd lease of 5 s (--state-store etcd default lease_ttl); a killed leader's lease expires, then the next campaigner wins. Polled every 20 ms through GET /api/mesh/v1/status.")
	r.AtMost("leader takeover after kill -9", 15, worst, "s")
	r.Note("load average at the end: %s", report.DetectMachine().LoadAverage)
	path, err := report.Write(*out, r)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", path)
}

func freePorts(n int) []string {
	out, err := freeport.Addrs(n)
	if err != nil {
		log.Fatal(err)
	}
	return out
}

// startEtcd runs a 3-member etcd cluster and answers its client URLs.
func startEtcd(bin, tmp string) (string, func()) {
	a := freePorts(6)
	var clients, peers []string
	for i := range 3 {
		clients = append(clients, "http://"+a[2*i])
		peers = append(peers, fmt.Sprintf("e%d=http://%s", i, a[2*i+1]))
	}
	var cmds []*exec.Cmd
	for i := range 3 {
		peer := "http://" + a[2*i+1]
		cmd := exec.Command(bin, "--name", fmt.Sprintf("e%d", i), "--data-dir", filepath.Join(tmp, fmt.Sprintf("etcd%d", i)),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "error")
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	stop := func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	for _, c := range clients {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if res, err := http.Get(c + "/health"); err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if strings.Contains(string(b), `"health":"true"`) {
					break
				}
			}
			if time.Now().After(deadline) {
				stop()
				log.Fatalf("etcd %s not healthy", c)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return strings.Join(clients, ","), stop
}

type server struct {
	cmd  *exec.Cmd
	http string
	done chan struct{}
}

func startServer(bin, data string, extra ...string) *server {
	addr := freePorts(1)[0]
	cmd := exec.Command(bin, append([]string{"server", "--data", data, "--http", addr, "--otlp-grpc", "off", "--otlp-http", "off", "--log-level", "warn"}, extra...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	s := &server{cmd: cmd, http: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatal("server not ready")
	return nil
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) apply(body []byte) (uint64, error) {
	res, err := http.Post("http://"+s.http+control.APIPrefix+"/apply", "application/yaml", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("apply: %d %s", res.StatusCode, b)
	}
	var v control.ResultView
	return v.Version, json.Unmarshal(b, &v)
}

// findLeader answers the server that says it leads, and the others.
func findLeader(servers []*server) (*server, []*server) {
	var leader *server
	var rest []*server
	for _, s := range servers {
		var st control.StatusView
		ok := false
		if res, err := http.Get("http://" + s.http + control.APIPrefix + "/status"); err == nil {
			ok = res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&st) == nil
			res.Body.Close()
		}
		if ok && st.Leader && leader == nil {
			leader = s
		} else {
			rest = append(rest, s)
		}
	}
	return leader, rest
}

// client is one proxy stream; it records when each version first arrived.
type client struct {
	mu      sync.Mutex
	arrived map[uint64]time.Time
}

func connect(s *server, id string) (*client, error) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.http+wire.Path, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.MaxServerMessage)
	b, _ := wire.Encode(&wire.Hello{Protocol: wire.Protocol, ProxyID: id, Service: "caller", Version: "v1", Mode: policy.ModeObserve, Upstreams: []string{"bench"}})
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, err
	}
	c := &client{arrived: map[uint64]time.Time{}}
	go func() {
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
			c.mu.Unlock()
		}
	}()
	return c, nil
}

func (c *client) wait(v uint64, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		at, ok := c.arrived[v]
		c.mu.Unlock()
		if ok {
			return at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("version %d not received within %s", v, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
