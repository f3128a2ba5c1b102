//go:build chdb

package clickhouse

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chdb"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
	"github.com/meshscope/meshscope/collector/tracestore/storetest"
)

// The in-process engine: one per test process (libchdb runs one engine with
// one storage path), shared by every test through its own databases.
var (
	chdbLib  string
	chdbPath string
	dbSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	chdbLib = os.Getenv("MESHSCOPE_CHDB_LIB")
	if chdbLib == "" {
		fmt.Fprintln(os.Stderr, "MESHSCOPE_CHDB_LIB is not set: run `make chdb-deps` and point it at libchdb.so")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "meshscope-chdb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	chdbPath = dir
	// Hold one connection for the whole run so the engine stays up.
	keep, err := chdb.Open(chdbLib, chdbPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	keep.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// engineConn opens a connection to the shared engine.
func engineConn(t testing.TB) *chdb.Conn {
	t.Helper()
	c, err := chdb.Open(chdbLib, chdbPath)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freshDB creates an empty database and returns a config naming it.
func freshDB(t testing.TB) Config {
	t.Helper()
	db := fmt.Sprintf("meshscope_test_%d", dbSeq.Add(1))
	c := engineConn(t)
	defer c.Close()
	if err := c.Exec(context.Background(), "CREATE DATABASE "+db, nil); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.DSN = "clickhouse://127.0.0.1:9000/" + db
	cfg.BatchTimeout = 2 * time.Millisecond
	return cfg
}

func openChdbStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := newStore(context.Background(), engineConn(t), cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceOnClickHouseEngine(t *testing.T) {
	cfgs := map[tracestore.Store]Config{}
	storetest.RunOptions(t, func(t *testing.T) tracestore.Store {
		cfg := freshDB(t)
		s := openChdbStore(t, cfg)
		cfgs[s] = cfg
		return s
	}, storetest.Options{Reopen: func(t *testing.T, s tracestore.Store) tracestore.Store {
		cfg := cfgs[s]
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openChdbStore(t, cfg)
		cfgs[s2] = cfg
		return s2
	}})
}

// tables lists the database's tables.
func tables(t *testing.T, c chsql.Conn, db string) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name", map[string]string{"db": db})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}
