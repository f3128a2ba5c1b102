//go:build chdb

package clickhouse

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

var allTables = []string{"dependencies", "dependencies_mv", "operations", "operations_mv", "schema_migrations", "spans", "trace_index", "trace_index_mv"}

func TestMigrateFresh(t *testing.T) {
	cfg := freshDB(t)
	c := engineConn(t)
	defer c.Close()
	ctx := context.Background()
	var out strings.Builder
	from, to, err := migrate(ctx, c, cfg, true, &out)
	if err != nil {
		t.Fatal(err)
	}
	if from != 0 || to != LatestVersion() {
		t.Fatalf("migrate fresh: %d → %d, want 0 → %d", from, to, LatestVersion())
	}
	db := cfg.database()
	if got := tables(t, c, db); !slices.Equal(got, allTables) {
		t.Fatalf("tables after migrate = %v, want %v", got, allTables)
	}
	if v, err := newSchema(cfg).currentVersion(ctx, c); err != nil || v != LatestVersion() {
		t.Fatalf("recorded version = %d, %v; want %d", v, err, LatestVersion())
	}
	// Every index of the last migration exists.
	rows, err := c.Query(ctx, "SELECT name FROM system.data_skipping_indices WHERE database = {db:String} AND table = 'spans' ORDER BY name", map[string]string{"db": db})
	if err != nil {
		t.Fatal(err)
	}
	var idx []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		idx = append(idx, n)
	}
	want := []string{"idx_attribute_keys", "idx_attribute_values", "idx_duration", "idx_resource_keys", "idx_resource_values", "idx_timestamp", "idx_trace_id"}
	if !slices.Equal(idx, want) {
		t.Fatalf("skip indexes = %v, want %v", idx, want)
	}
	// Running again is a no-op and a dry run has nothing pending.
	from, to, err = migrate(ctx, c, cfg, true, nil)
	if err != nil || from != to {
		t.Fatalf("second migrate: %d → %d, %v; want no change", from, to, err)
	}
	out.Reset()
	if err := migrateConn(ctx, c, cfg, false, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "CREATE") {
		t.Fatalf("dry run on a migrated database prints statements:\n%s", out.String())
	}
}

func TestMigrateDryRunChangesNothing(t *testing.T) {
	cfg := freshDB(t)
	c := engineConn(t)
	defer c.Close()
	var out strings.Builder
	if err := migrateConn(context.Background(), c, cfg, false, &out); err != nil {
		t.Fatal(err)
	}
	for _, m := range Migrations(cfg) {
		for _, st := range m.Statements {
			if !strings.Contains(out.String(), st) {
				t.Fatalf("dry run does not print migration %d statement:\n%s", m.Version, st)
			}
		}
	}
	if got := tables(t, c, cfg.database()); len(got) != 0 {
		t.Fatalf("dry run created tables %v", got)
	}
}

// TestMigrateUpgradeFromV1 stores spans with the first schema only, then
// opens the store (which migrates to the latest version): the old spans are
// found by id (the trace index is backfilled) and listed.
func TestMigrateUpgradeFromV1(t *testing.T) {
	cfg := freshDB(t)
	c := engineConn(t)
	defer c.Close()
	ctx := context.Background()
	if _, to, err := migrateTo(ctx, c, cfg, true, nil, 1); err != nil || to != 1 {
		t.Fatalf("migrate to v1: %d, %v", to, err)
	}
	if got := tables(t, c, cfg.database()); !slices.Equal(got, []string{"schema_migrations", "spans"}) {
		t.Fatalf("v1 tables = %v", got)
	}
	b := time.Now().Add(-time.Hour)
	old := spans.Span{TraceID: spans.TraceID{9, 9}, SpanID: spans.SpanID{1}, Service: "legacy", Name: "op", Kind: spans.KindServer,
		StartUnixNano: b.UnixNano(), EndUnixNano: b.Add(time.Millisecond).UnixNano(), Attrs: []spans.Attr{spans.IntAttr("n", 7)}}
	if err := c.Insert(ctx, "INSERT INTO "+cfg.database()+".spans ("+spanColumns+")", [][]any{spanRow(&old)}); err != nil {
		t.Fatal(err)
	}

	s := openChdbStore(t, cfg)
	defer s.Close()
	if got := tables(t, c, cfg.database()); !slices.Equal(got, allTables) {
		t.Fatalf("tables after upgrade = %v, want %v", got, allTables)
	}
	got, err := s.Trace(ctx, old.TraceID)
	if err != nil || len(got) != 1 || got[0].Attrs[0] != old.Attrs[0] {
		t.Fatalf("Trace(old span) after upgrade = %v, %v", got, err)
	}
	svcs, err := s.Services(ctx)
	if err != nil || !slices.Equal(svcs, []string{"legacy"}) {
		t.Fatalf("Services after upgrade = %v, %v", svcs, err)
	}
	// New writes land in every side table.
	nw := old
	nw.SpanID = spans.SpanID{2}
	nw.Service = "new"
	if err := s.WriteSpans(ctx, []spans.Span{nw}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Trace(ctx, old.TraceID); err != nil || len(got) != 2 {
		t.Fatalf("Trace after a new write = %d spans, %v; want 2", len(got), err)
	}
	usage, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usage {
		if u.Table == "spans" && (u.Rows != 2 || u.Bytes == 0) {
			t.Fatalf("Usage of spans = %+v, want 2 rows on disk", u)
		}
	}
}

func TestSkipMigrationsRefusesOldSchema(t *testing.T) {
	cfg := freshDB(t)
	c := engineConn(t)
	defer c.Close()
	if _, _, err := migrateTo(context.Background(), c, cfg, true, nil, 2); err != nil {
		t.Fatal(err)
	}
	cfg.SkipMigrations = true
	_, err := newStore(context.Background(), engineConn(t), cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "migrate --apply") {
		t.Fatalf("store on a v2 schema with skip_migrations: %v, want a refusal naming meshscope migrate", err)
	}
}

// TestClusterDDLParses runs the cluster DDL through the engine's parser
// (EXPLAIN AST): the in-process engine has no cluster to run it on.
func TestClusterDDLParses(t *testing.T) {
	c := engineConn(t)
	defer c.Close()
	cfg := Config{DSN: "clickhouse://h:9000/traces", Cluster: "meshscope"}
	stmts := []string{newSchema(cfg).migrationsTable()}
	for _, m := range Migrations(cfg) {
		stmts = append(stmts, m.Statements...)
	}
	for _, st := range stmts {
		if err := c.Exec(context.Background(), "EXPLAIN AST "+st, nil); err != nil {
			t.Errorf("cluster DDL does not parse: %v\n%s", err, st)
		}
	}
}

func TestDependencies(t *testing.T) {
	s := openChdbStore(t, freshDB(t))
	defer s.Close()
	ctx := context.Background()
	b := time.Now().Add(-time.Hour).Truncate(time.Minute)
	call := func(n byte, from, peer string, status spans.StatusCode) spans.Span {
		return spans.Span{TraceID: spans.TraceID{n}, SpanID: spans.SpanID{n}, Service: from, Name: "call", Kind: spans.KindClient,
			StartUnixNano: b.UnixNano() + int64(n), EndUnixNano: b.UnixNano() + 1000, StatusCode: status,
			Attrs: []spans.Attr{spans.StringAttr("peer.service", peer)}}
	}
	server := call(9, "catalog", "", 0)
	server.Kind = spans.KindServer
	server.Attrs = nil
	if err := s.WriteSpans(ctx, []spans.Span{call(1, "web", "catalog", 0), call(2, "web", "catalog", spans.StatusError), server}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSpans(ctx, []spans.Span{call(3, "web", "payments", 0)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Dependencies(ctx, b.Add(-time.Minute), b.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []Dependency{{"web", "catalog", 2, 1}, {"web", "payments", 1, 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("Dependencies = %v, want %v", got, want)
	}
	if got, _ := s.Dependencies(ctx, b.Add(time.Hour), b.Add(2*time.Hour)); len(got) != 0 {
		t.Fatalf("Dependencies outside the window = %v", got)
	}
}

// TestDuplicateDeliveryReadOnce: a batch retried by its sender is stored
// twice; trace by id returns each span once.
func TestDuplicateDeliveryReadOnce(t *testing.T) {
	s := openChdbStore(t, freshDB(t))
	defer s.Close()
	ctx := context.Background()
	sp := spans.Span{TraceID: spans.TraceID{5}, SpanID: spans.SpanID{5}, Service: "web", Name: "x",
		StartUnixNano: time.Now().UnixNano(), EndUnixNano: time.Now().UnixNano()}
	for range 2 {
		if err := s.WriteSpans(ctx, []spans.Span{sp}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Trace(ctx, sp.TraceID)
	if err != nil || len(got) != 1 {
		t.Fatalf("Trace after duplicate delivery = %d spans, %v; want 1", len(got), err)
	}
	refs, err := s.Search(ctx, tracestore.Query{Service: "web"})
	if err != nil || len(refs) != 1 {
		t.Fatalf("Search after duplicate delivery = %v, %v", refs, err)
	}
}

// TestTraceByIDUsesIndexes checks the engine's plan of the trace-by-id query:
// the trace id bloom filter and the timestamp minmax index drop granules.
func TestTraceByIDUsesIndexes(t *testing.T) {
	s := openChdbStore(t, freshDB(t))
	defer s.Close()
	ctx := context.Background()
	b := time.Now().Add(-time.Hour)
	var batch []spans.Span
	for i := range 5000 {
		st := b.Add(time.Duration(i) * time.Second)
		batch = append(batch, spans.Span{TraceID: spans.TraceID{byte(i >> 8), byte(i)}, SpanID: spans.SpanID{1}, Service: "web", Name: "op",
			StartUnixNano: st.UnixNano(), EndUnixNano: st.UnixNano() + 10})
	}
	if err := s.WriteSpans(ctx, batch); err != nil {
		t.Fatal(err)
	}
	query, params := s.traceSQL(batch[2500].TraceID)
	rows, err := s.conn.Query(ctx, "EXPLAIN indexes = 1 "+query, params)
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	for _, want := range []string{"idx_trace_id", "idx_timestamp"} {
		if !strings.Contains(plan.String(), want) {
			t.Fatalf("trace-by-id plan does not use %s:\n%s", want, plan.String())
		}
	}
	got, err := s.Trace(ctx, batch[2500].TraceID)
	if err != nil || len(got) != 1 {
		t.Fatalf("Trace = %v, %v", got, err)
	}
	t.Logf("plan:\n%s", plan.String())
}
