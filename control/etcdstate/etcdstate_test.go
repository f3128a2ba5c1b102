package etcdstate_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshscope/meshscope/control/etcdstate"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/registry"
	"github.com/meshscope/meshscope/control/store"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/demo/freeport"
)

// startEtcd runs a one-member etcd (Debian etcd-server) on loopback and
// answers its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server); skipping the tests against a real etcd")
	}
	ports, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	client, peer := "http://"+ports[0], "http://"+ports[1]
	var out strings.Builder
	cmd := exec.Command(bin, "--name", "m0", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "m0="+peer, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("etcd output:\n%s", out.String())
		}
	})
	return client
}

func dial(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cfg := etcdstate.DefaultConfig()
	cfg.Endpoints = []string{endpoint}
	cfg.DialTimeout = 20 * time.Second
	cli, err := etcdstate.Dial(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func openStore(t *testing.T, cli *clientv3.Client) *store.Store {
	t.Helper()
	st, err := store.OpenShared(etcdstate.OpenLog(cli, "/t/policies/log"), "etcd:/t/policies/log", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("OpenShared: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func route(t *testing.T, name string, canary int) []policy.Document {
	t.Helper()
	docs, err := policy.Load(fmt.Appendf(nil, "kind: Route\nname: %s\nservice: %s\nrules:\n- backends: [{version: v1, weight: %d}, {version: v2, weight: %d}]\n", name, name, 100-canary, canary))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestSharedPolicyLog: two stores over one etcd see each other's versions,
// concurrent applies get distinct versions and none is lost, and a
// compare-and-put against a document the other server changed is stale.
func TestSharedPolicyLog(t *testing.T) {
	ep := startEtcd(t)
	a, b := openStore(t, dial(t, ep)), openStore(t, dial(t, ep))
	sub := b.Subscribe()
	res, err := a.Apply(route(t, "inv", 10), store.ApplyOptions{Who: "alice"})
	if err != nil || res.Version != 1 {
		t.Fatalf("Apply on a: %+v %v", res, err)
	}
	select {
	case <-sub:
	case <-time.After(5 * time.Second):
		t.Fatal("b was not told about a's version")
	}
	if v := b.Version(); v != 1 {
		t.Fatalf("b is at version %d, want 1", v)
	}

	// Both write at once: each apply lands in its own version.
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range 20 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Apply(route(t, fmt.Sprintf("svc%d", i), 5), store.ApplyOptions{Who: "w"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Version() != 21 || b.Version() != 21 {
		if time.Now().After(deadline) {
			t.Fatalf("versions a=%d b=%d, want 21 on both", a.Version(), b.Version())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, da := a.Snapshot()
	_, db := b.Snapshot()
	if len(da) != 21 || len(db) != 21 {
		t.Fatalf("documents a=%d b=%d, want 21", len(da), len(db))
	}

	// a changes inv; b, still expecting the old document, is refused.
	old, _ := b.Get(policy.Key{Kind: "Route", Name: "inv"})
	if _, err := a.Apply(route(t, "inv", 50), store.ApplyOptions{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	after := route(t, "inv", 0)[0]
	_, err = b.CompareAndPut([]store.Put{{Key: after.Key(), Expect: &old.Document, After: &after}}, "", store.ApplyOptions{Who: "guard"})
	if _, stale := err.(*store.StaleError); !stale {
		t.Fatalf("CompareAndPut over a changed document: %v, want a *store.StaleError", err)
	}
	if h := a.History(0, 0); len(h) != 22 {
		t.Fatalf("history has %d entries, want 22", len(h))
	}
}

// TestLeaderFailover: of two electors exactly one leads; when it stops
// the other takes over.
func TestLeaderFailover(t *testing.T) {
	ep := startEtcd(t)
	cfg := etcdstate.DefaultConfig()
	cfg.LeaseTTL = 2 * time.Second
	var els []*etcdstate.Elector
	var cancels []context.CancelFunc
	var wg sync.WaitGroup
	for i := range 2 {
		e, err := etcdstate.NewElector(dial(t, ep), cfg, fmt.Sprintf("s%d", i), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		els, cancels = append(els, e), append(cancels, cancel)
		wg.Add(1)
		go func() { defer wg.Done(); _ = e.Run(ctx) }()
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	})
	leader := waitLeader(t, els, -1)
	if id, err := els[1-leader].Leader(context.Background()); err != nil || id != els[leader].ID() {
		t.Fatalf("Leader() = %q, %v; want %q", id, err, els[leader].ID())
	}
	cancels[leader]()
	waitLeader(t, els, leader)
}

// waitLeader waits until exactly one elector other than not leads.
func waitLeader(t *testing.T, els []*etcdstate.Elector, not int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, who := 0, -1
		for i, e := range els {
			if e.IsLeader() {
				n++
				who = i
			}
		}
		if n > 1 {
			t.Fatal("two electors lead at once")
		}
		if n == 1 && who != not {
			return who
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no elector but s%d leads", not)
	return -1
}

// TestCheckCA: the first server's CA is recorded; the same CA joins, another is
// refused with a message naming the flags.
func TestCheckCA(t *testing.T) {
	cli := dial(t, startEtcd(t))
	ctx := context.Background()
	for _, fp := range []string{"aa", "aa"} {
		if err := etcdstate.CheckCA(ctx, cli, "/t", fp); err != nil {
			t.Fatalf("CheckCA(%s): %v", fp, err)
		}
	}
	err := etcdstate.CheckCA(ctx, cli, "/t", "bb")
	if err == nil || !strings.Contains(err.Error(), "--ca-cert and --ca-key") {
		t.Fatalf("CheckCA with another CA: %v, want a refusal naming --ca-cert and --ca-key", err)
	}
}

// TestSharedRegistry: a proxy one server publishes reaches the other's
// sink, and leaves it when the publishing server stops (its lease goes).
func TestSharedRegistry(t *testing.T) {
	ep := startEtcd(t)
	cfg := etcdstate.DefaultConfig()
	cfg.LeaseTTL = 2 * time.Second
	a := etcdstate.NewPeers(dial(t, ep), cfg, "a", slog.New(slog.DiscardHandler))
	b := etcdstate.NewPeers(dial(t, ep), cfg, "b", slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	var atA, atB map[string]registry.Peer
	sink := func(to *map[string]registry.Peer) func(map[string]registry.Peer) {
		return func(m map[string]registry.Peer) { mu.Lock(); *to = m; mu.Unlock() }
	}
	actx, acancel := context.WithCancel(context.Background())
	bctx, bcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = a.Run(actx, sink(&atA)) }()
	go func() { defer wg.Done(); _ = b.Run(bctx, sink(&atB)) }()
	t.Cleanup(func() { acancel(); bcancel(); wg.Wait() })

	a.Publish("web-1", &registry.Peer{Hello: wire.Hello{ProxyID: "web-1", Service: "web", Version: "v1", Inbound: []string{"127.0.0.1:1"}}, Health: "healthy"})
	eventually(t, "b sees web-1", func() bool { mu.Lock(); defer mu.Unlock(); return atB["web-1"].Health == "healthy" })
	mu.Lock()
	if len(atA) != 0 {
		t.Errorf("a sees its own proxies as peers: %v", atA)
	}
	mu.Unlock()
	acancel()
	eventually(t, "web-1 leaves b when a stops", func() bool { mu.Lock(); defer mu.Unlock(); _, ok := atB["web-1"]; return !ok })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
