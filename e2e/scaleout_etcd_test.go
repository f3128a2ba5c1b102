//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/ca"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/rollout"
	"github.com/meshscope/meshscope/control/wire"
)

// startEtcdCluster runs a 3-member etcd cluster (Debian etcd-server) on
// loopback and answers its client URLs, comma-separated.
func startEtcdCluster(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server); skipping the scale-out test")
	}
	a := freeAddrs(t, 6)
	var clients, peers []string
	for i := range 3 {
		clients = append(clients, "http://"+a[2*i])
		peers = append(peers, fmt.Sprintf("e%d=http://%s", i, a[2*i+1]))
	}
	var procs []*proc
	for i := range 3 {
		peer := "http://" + a[2*i+1]
		procs = append(procs, startProc(t, fmt.Sprintf("etcd-%d", i), bin, "--name", fmt.Sprintf("e%d", i),
			"--data-dir", t.TempDir(), "--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "meshscope-e2e", "--logger", "zap", "--log-level", "warn"))
	}
	for i, c := range clients {
		poll(t, 30*time.Second, "etcd member healthy at "+c, func() (bool, string) {
			code, body, err := get(c + "/health")
			if err != nil {
				return false, err.Error()
			}
			return code == http.StatusOK && strings.Contains(string(body), `"health":"true"`), string(body)
		}, procs[i])
	}
	return strings.Join(clients, ",")
}

func meshStatus(s *server) (control.StatusView, error) {
	var v control.StatusView
	err := getJSON(s.url(control.APIPrefix+"/status"), &v)
	return v, err
}

// probe is a raw proxy stream: it records when each snapshot version
// arrived.
type probe struct {
	mu      sync.Mutex
	arrived map[uint64]time.Time
}

func dialProbe(t *testing.T, s *server, id string) *probe {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.http+wire.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	b, _ := wire.Encode(&wire.Hello{Protocol: wire.Protocol, ProxyID: id, Service: "probe", Version: "v1", Mode: policy.ModeEnforce, Upstreams: []string{"catalog"}})
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	p := &probe{arrived: map[uint64]time.Time{}}
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if m, err := wire.Decode(data); err == nil {
				if sn, ok := m.(*wire.Snapshot); ok {
					p.mu.Lock()
					if _, seen := p.arrived[sn.Version]; !seen {
						p.arrived[sn.Version] = time.Now()
					}
					p.mu.Unlock()
				}
			}
		}
	}()
	return p
}

func (p *probe) at(version uint64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.arrived[version]
	return at, ok
}

// historyBy counts the history entries written by who.
func historyBy(t *testing.T, s *server, who string) int {
	t.Helper()
	var h control.HistoryView
	if err := getJSON(s.url(control.APIPrefix+"/history"), &h); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range h.Entries {
		if e.Who == who {
			n++
		}
	}
	return n
}

// TestScaleOutEtcd runs three servers over a 3-member etcd cluster with
// proxies spread across them: a policy applied on one server reaches a
// proxy stream on another within 1 s; a server with another CA is
// refused; a rollout's start is written once by the leader; killing the
// leader (kill -9) moves leadership within 15 s without repeating the
// action; and the caller proxy, whose server that was, moves to the next
// server without one failed request.
func TestScaleOutEtcd(t *testing.T) {
	endpoints := startEtcdCluster(t)
	bin, _ := binaries(t)
	etcdArgs := []string{"--state-store", "etcd", "--etcd-endpoints", endpoints, "--endpoint-grace", "30s"}
	first := startControlServer(t, t.TempDir(), etcdArgs...)
	caArgs := []string{"--ca-cert", filepath.Join(first.data, "ca", ca.CertName), "--ca-key", filepath.Join(first.data, "ca", ca.KeyName)}
	servers := []*server{first}
	for range 2 {
		servers = append(servers, startControlServer(t, t.TempDir(), append(etcdArgs, caArgs...)...))
	}

	// A server with its own CA may not join.
	out, err := exec.Command(bin, append([]string{"server", "--data", t.TempDir(), "--http", freeAddrs(t, 1)[0],
		"--otlp-grpc", "off", "--otlp-http", "off"}, etcdArgs...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--ca-cert and --ca-key") {
		t.Fatalf("a server with another CA: err %v, output:\n%s", err, out)
	}

	// One leader, and every server agrees who it is.
	var leader *server
	var others []*server
	poll(t, 15*time.Second, "one leader all servers name", func() (bool, string) {
		leader, others = nil, nil
		var ids []string
		for _, s := range servers {
			st, err := meshStatus(s)
			if err != nil {
				return false, err.Error()
			}
			ids = append(ids, st.LeaderID)
			if st.Leader {
				leader = s
			} else {
				others = append(others, s)
			}
		}
		return leader != nil && ids[0] != "" && ids[0] == ids[1] && ids[1] == ids[2], strings.Join(ids, " ")
	}, first.proc)
	if v, ok, err := scrape(leader.url("/metrics"), "meshscope_control_leader"); err != nil || !ok || v != 1 {
		t.Fatalf("leader's meshscope_control_leader = %v (found %v, %v), want 1", v, ok, err)
	}
	a, b := others[0], others[1]

	// The backend's v1 proxy talks to a, its v2 proxy (the rollout's
	// canary) to b; the caller's to the leader first, then b. mTLS
	// between them works because the servers share the CA.
	for _, v := range []struct {
		version string
		s       *server
	}{{"v1", a}, {"v2", b}} {
		in := freeAddrs(t, 1)[0]
		startProxy(t, "catalog-"+v.version, "--service", "catalog", "--version", v.version, "--inbound", in+"="+startApp(t).addr,
			"--control-plane", "http://"+v.s.http, "--state-dir", t.TempDir(), "--no-tracing")
	}
	caller := freeAddrs(t, 1)[0]
	callerProc, callerAdmin := startProxy(t, "web", "--service", "web", "--mode", "enforce", "--upstream", caller+"=catalog",
		"--control-plane", "http://"+leader.http+",http://"+b.http, "--state-dir", t.TempDir(), "--no-tracing")
	(&mesh{callerAdmin: callerAdmin, callerProc: callerProc}).waitEndpoints(t, 2)
	if code, body := send(t, caller, "/items", ""); code != http.StatusOK {
		t.Fatalf("request through the caller: %d %s", code, body)
	}

	// A policy applied on a reaches a stream on b within 1 s.
	pr := dialProbe(t, b, "probe-b")
	time.Sleep(300 * time.Millisecond) // its first snapshot
	var res control.ResultView
	applied := time.Now()
	if code := post(t, a.url(control.APIPrefix+"/apply"), "kind: Route\nname: catalog-timeout\nservice: catalog\ntimeout: 3s\n", &res); code != http.StatusOK || !res.Changed {
		t.Fatalf("apply on a: %d %+v", code, res)
	}
	poll(t, 10*time.Second, fmt.Sprintf("version %d on b's stream", res.Version), func() (bool, string) {
		_, ok := pr.at(res.Version)
		return ok, ""
	}, b.proc)
	at, _ := pr.at(res.Version)
	if d := at.Sub(applied); d > time.Second {
		t.Errorf("version %d reached b's stream %s after the apply on a, want ≤ 1s", res.Version, d)
	} else {
		t.Logf("apply on a → snapshot on b's stream: %s", d.Round(time.Millisecond))
	}

	// A rollout applied on b is started once, by the leader.
	rolloutDoc := "kind: Rollout\nname: catalog-v2\nservice: catalog\nstable: v1\ncanary: v2\nsteps: [10, 100]\ninterval: 1h\n"
	if code := post(t, b.url(control.APIPrefix+"/apply"), rolloutDoc, &res); code != http.StatusOK {
		t.Fatalf("apply the rollout on b: %d %+v", code, res)
	}
	const starter = "rollout catalog-v2"
	poll(t, 10*time.Second, "the rollout's route write", func() (bool, string) {
		n := historyBy(t, a, starter)
		return n >= 1, fmt.Sprintf("%d entries by %q", n, starter)
	}, leader.proc)

	// Load through the caller while its server, the leader, dies.
	var sent, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				sent.Add(1)
				r, err := client.Get("http://" + caller + "/items")
				if err == nil {
					r.Body.Close()
					if r.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", r.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(leader.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var next *server
	poll(t, 15*time.Second, "a new leader", func() (bool, string) {
		next = nil
		var seen []string
		for _, s := range []*server{a, b} {
			st, err := meshStatus(s)
			if err != nil {
				return false, err.Error()
			}
			seen = append(seen, fmt.Sprintf("%s leader=%v leader_id=%s", st.ID, st.Leader, st.LeaderID))
			if st.Leader {
				next = s
			}
		}
		return next != nil, strings.Join(seen, "; ")
	}, a.proc, b.proc)
	t.Logf("leadership moved %s after kill -9", time.Since(killed).Round(time.Millisecond))
	if v, ok, err := scrape(next.url("/metrics"), "meshscope_control_leader"); err != nil || !ok || v != 1 {
		t.Fatalf("new leader's meshscope_control_leader = %v (found %v, %v), want 1", v, ok, err)
	}

	// The new leader takes the rollout over (on its next tick) before the
	// policy below changes the rollout's route: a route that differs from
	// the saved state at take-over is set back, as a dead leader's unsaved
	// write would be, and that would be a second write of the rollout's.
	poll(t, 10*time.Second, "the new leader's take-over of the rollout", func() (bool, string) {
		var ro rollout.State
		if err := getJSON(next.url(rollout.APIPrefix+"/catalog-v2"), &ro); err != nil {
			return false, err.Error()
		}
		for _, e := range ro.Events {
			if isTakeOver(e) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", ro.Events)
	}, next.proc)

	// The caller is on b now, and a policy applied after the kill reaches it.
	poll(t, 15*time.Second, "the caller registered at b", func() (bool, string) {
		var v control.EndpointsView
		if err := getJSON(b.url(control.APIPrefix+"/endpoints"), &v); err != nil {
			return false, err.Error()
		}
		for _, p := range v.Proxies {
			if p.Service == "web" && p.Connected {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", v.Proxies)
	}, callerProc, b.proc)
	if code := post(t, next.url(control.APIPrefix+"/apply"), "kind: Route\nname: catalog-timeout\nservice: catalog\ntimeout: 4s\n", &res); code != http.StatusOK || !res.Changed {
		t.Fatalf("apply after the kill: %d %+v", code, res)
	}
	// At least that version: the rollout running on the new leader may
	// advance (a newer version) before the caller is seen at this one.
	poll(t, 10*time.Second, fmt.Sprintf("the caller at version %d or later", res.Version), func() (bool, string) {
		v, _, err := scrape("http://"+callerAdmin+"/metrics", "meshscope_proxy_policy_version")
		return err == nil && uint64(v) >= res.Version, fmt.Sprintf("%v %v", v, err)
	}, callerProc)

	// The new leader runs the rollout on; it does not start it again.
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if n := historyBy(t, next, starter); n != 1 {
		t.Errorf("%d history entries by %q after the failover, want exactly 1", n, starter)
	}
	var ro rollout.State
	if err := getJSON(next.url(rollout.APIPrefix+"/catalog-v2"), &ro); err != nil {
		t.Fatal(err)
	}
	started, resumed := 0, 0
	for _, e := range ro.Events {
		switch {
		case e.Type == rollout.EventStarted:
			started++
		case isTakeOver(e):
			resumed++
		}
	}
	if started != 1 || resumed != 1 || ro.Weight != 10 || ro.Phase != rollout.PhaseProgressing {
		t.Errorf("rollout on the new leader: %d started and %d take-over events, weight %d, phase %s; want 1, 1, 10, progressing: %+v",
			started, resumed, ro.Weight, ro.Phase, ro.Events)
	}
	if f := failed.Load(); f > 0 || sent.Load() < 50 {
		t.Errorf("%d of %d requests through the caller failed during the failover (last: %v)", f, sent.Load(), lastErr.Load())
	}
}

// isTakeOver reports whether e is a new leader's take-over of a rollout.
func isTakeOver(e rollout.Event) bool {
	return e.Type == rollout.EventResumed && strings.Contains(e.Message, "took the controllers over")
}
