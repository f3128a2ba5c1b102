package clickhouse

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/storetest"
	"github.com/meshscope/meshscope/demo/freeport"
)

// debianServer is Debian's packaged clickhouse-server (18.16): a real old
// server for the version refusal.
const debianServer = "/usr/sbin/clickhouse-server"

// startDebianServer runs the packaged server on free loopback ports in a
// temporary directory and returns its native-protocol address.
func startDebianServer(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(debianServer); err != nil {
		t.Skipf("%s not installed (apt-get install clickhouse-server): %v", debianServer, err)
	}
	dir := t.TempDir()
	ports, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	addr := ports[0]
	_, tcpPort, _ := net.SplitHostPort(addr)
	_, httpPort, _ := net.SplitHostPort(ports[1])
	config := fmt.Sprintf(`<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/err.log</errorlog></logger>
  <tcp_port>%[2]s</tcp_port>
  <http_port>%[3]s</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
`, dir, tcpPort, httpPort)
	cfgPath := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(debianServer, "--config-file="+cfgPath)
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Fatalf("clickhouse-server did not listen on %s within 60s: %v\n%s", addr, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRefusesDebianServer starts Debian's clickhouse-server 18.16 and checks
// that the store and the migrate command refuse it, naming both versions.
func TestRefusesDebianServer(t *testing.T) {
	addr := startDebianServer(t)
	cfg := Defaults()
	cfg.DSN = "clickhouse://" + addr + "/default?dial_timeout=5s"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, cfg, prometheus.NewRegistry(), nil)
	if err == nil {
		s.Close()
		t.Fatal("store opened on clickhouse-server 18.16, want refusal")
	}
	if !strings.Contains(err.Error(), "18.16") || !strings.Contains(err.Error(), MinServerVersion) {
		t.Fatalf("refusal %q does not name both 18.16 and %s", err, MinServerVersion)
	}
	var out strings.Builder
	err = Migrate(ctx, cfg, false, &out)
	if err == nil || !strings.Contains(err.Error(), "18.16") {
		t.Fatalf("Migrate on 18.16 = %v, want refusal", err)
	}
	if out.Len() != 0 {
		t.Fatalf("Migrate printed statements for a refused server:\n%s", out.String())
	}
}

// TestWireConformance runs the conformance suite over clickhouse-go/v2
// against a real server when MESHSCOPE_TEST_CLICKHOUSE_DSN is set
// (clickhouse://user:pass@host:9000/?...; one database per case is created
// and dropped).
func TestWireConformance(t *testing.T) {
	dsn := os.Getenv("MESHSCOPE_TEST_CLICKHOUSE_DSN")
	if dsn == "" {
		t.Skip("MESHSCOPE_TEST_CLICKHOUSE_DSN not set")
	}
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var seq atomic.Int64
	prefix := fmt.Sprintf("meshscope_wire_%d_", time.Now().UnixNano())
	cfgs := map[tracestore.Store]Config{}
	open := func(t *testing.T, cfg Config) tracestore.Store {
		s, err := New(context.Background(), cfg, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		cfgs[s] = cfg
		return s
	}
	storetest.RunOptions(t, func(t *testing.T) tracestore.Store {
		db := fmt.Sprintf("%s%d", prefix, seq.Add(1))
		ctx := context.Background()
		if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + db
		cfg := Defaults()
		cfg.DSN = u.String()
		cfg.BatchTimeout = 2 * time.Millisecond
		return open(t, cfg)
	}, storetest.Options{Reopen: func(t *testing.T, s tracestore.Store) tracestore.Store {
		cfg := cfgs[s]
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return open(t, cfg)
	}})
}
