//go:build chdb

package clickhouse

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

var allTables = []string{"dependencies", "dependencies_mv", "operations", "operations_mv", "peers", "peers_mv", "schema_migrations", "spans", "spans_by_trace", "spans_mv", "trace_index", "trace_index_mv"}

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
	want := []string{"idx_attribute_keys", "idx_attribute_values", "idx_duration", "idx_peer", "idx_resource_keys", "idx_resource_values", "idx_timestamp"}
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

// TestMigrateUpgradeFromV5 stores spans with the search-ordered layout of
// version 5 (one spans table with every column), then opens the store, which
// migrates to the latest version: the old spans are copied into
// spans_by_trace and read back whole by id, the search table loses its wide
// columns but still finds them, and new writes reach every table once.
func TestMigrateUpgradeFromV5(t *testing.T) {
	cfg := freshDB(t)
	c := engineConn(t)
	defer c.Close()
	ctx := context.Background()
	db := cfg.database()
	if _, to, err := migrateTo(ctx, c, cfg, true, nil, 5); err != nil || to != 5 {
		t.Fatalf("migrate to v5: %d, %v", to, err)
	}
	if got := tables(t, c, db); slices.Contains(got, "spans_by_trace") {
		t.Fatalf("v5 tables = %v, want no spans_by_trace yet", got)
	}
	b := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	root := spans.Span{TraceID: spans.TraceID{7, 7}, SpanID: spans.SpanID{1}, TraceState: "k=v", Service: "legacy", Name: "GET /",
		Kind: spans.KindServer, StartUnixNano: b.UnixNano(), EndUnixNano: b.Add(300 * time.Millisecond).UnixNano(),
		StatusCode: spans.StatusError, StatusMessage: "boom",
		Attrs:    []spans.Attr{spans.StringAttr("http.route", "/"), spans.IntAttr("http.status_code", 503), spans.BoolAttr("retry", true)},
		Resource: []spans.Attr{spans.StringAttr("host.name", "n1")}, Scope: "lib", ScopeVersion: "1.2",
		Events: []spans.Event{{TimeUnixNano: b.Add(time.Millisecond).UnixNano(), Name: "exception", Attrs: []spans.Attr{spans.FloatAttr("x", 0.5)}}},
		Links:  []spans.Link{{TraceID: spans.TraceID{1}, SpanID: spans.SpanID{2}, Attrs: []spans.Attr{spans.StringAttr("l", "v")}}},
	}
	child := spans.Span{TraceID: root.TraceID, SpanID: spans.SpanID{2}, ParentSpanID: root.SpanID, Service: "db", Name: "query",
		Kind: spans.KindClient, StartUnixNano: b.Add(time.Millisecond).UnixNano(), EndUnixNano: b.Add(2 * time.Millisecond).UnixNano(),
		Attrs: []spans.Attr{spans.StringAttr("peer.service", "postgres")}}
	other := spans.Span{TraceID: spans.TraceID{8}, SpanID: spans.SpanID{1}, Service: "legacy", Name: "GET /x", Kind: spans.KindServer,
		StartUnixNano: b.UnixNano(), EndUnixNano: b.Add(time.Millisecond).UnixNano()}
	old := []spans.Span{root, child, other}
	var rows [][]any
	for i := range old {
		rows = append(rows, spanRow(&old[i]))
	}
	if err := c.Insert(ctx, "INSERT INTO "+db+".spans ("+spanColumns+")", rows); err != nil {
		t.Fatal(err)
	}

	s := openChdbStore(t, cfg)
	defer s.Close()
	if v, err := s.schema.currentVersion(ctx, c); err != nil || v != LatestVersion() {
		t.Fatalf("version after upgrade = %d, %v; want %d", v, err, LatestVersion())
	}
	if got := tables(t, c, db); !slices.Equal(got, allTables) {
		t.Fatalf("tables after upgrade = %v, want %v", got, allTables)
	}
	got, err := s.Trace(ctx, root.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b spans.Span) int { return int(a.SpanID[0]) - int(b.SpanID[0]) })
	if len(got) != 2 || !reflect.DeepEqual(got[0], root) || !reflect.DeepEqual(got[1], child) {
		t.Fatalf("Trace(old trace) after upgrade =\n%+v\nwant\n%+v", got, []spans.Span{root, child})
	}
	// The search table kept only what search reads, and still finds old spans.
	cols := columnNames(t, c, db, "spans")
	for _, dropped := range searchDroppedColumns {
		if slices.Contains(cols, dropped) {
			t.Fatalf("search table still has column %s after upgrade: %v", dropped, cols)
		}
	}
	refs, err := s.Search(ctx, tracestore.Query{Service: "legacy", Attrs: map[string]string{"http.status_code": "503"}})
	if err != nil || len(refs) != 1 || refs[0].TraceID != root.TraceID {
		t.Fatalf("Search(old attribute) after upgrade = %v, %v", refs, err)
	}
	// The peer of the old CLIENT span is listed (backfilled) and found (the
	// peer column is computed on read for parts older than the column).
	if svcs, err := s.Services(ctx); err != nil || !slices.Equal(svcs, []string{"db", "legacy", "postgres"}) {
		t.Fatalf("Services after upgrade = %v, %v; want the old peer postgres listed", svcs, err)
	}
	if refs, err := s.Search(ctx, tracestore.Query{Service: "postgres"}); err != nil || len(refs) != 1 || refs[0].TraceID != root.TraceID {
		t.Fatalf("Search(old peer service) after upgrade = %v, %v", refs, err)
	}
	// A new write lands in spans_by_trace and, through the views, once in
	// the search table and each side table.
	nw := spans.Span{TraceID: root.TraceID, SpanID: spans.SpanID{3}, ParentSpanID: root.SpanID, Service: "new", Name: "call",
		Kind: spans.KindClient, StartUnixNano: b.Add(5 * time.Millisecond).UnixNano(), EndUnixNano: b.Add(6 * time.Millisecond).UnixNano(),
		Attrs: []spans.Attr{spans.StringAttr("peer.service", "payments")}}
	if err := s.WriteSpans(ctx, []spans.Span{nw}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Trace(ctx, root.TraceID); err != nil || len(got) != 3 {
		t.Fatalf("Trace after a new write = %d spans, %v; want 3", len(got), err)
	}
	if refs, err := s.Search(ctx, tracestore.Query{Service: "new"}); err != nil || len(refs) != 1 || refs[0].TraceID != root.TraceID {
		t.Fatalf("Search(new service) = %v, %v", refs, err)
	}
	deps, err := s.Dependencies(ctx, b.Add(-time.Minute), b.Add(time.Minute))
	if err != nil || !slices.Contains(deps, Dependency{"new", "payments", 1, 0}) {
		t.Fatalf("Dependencies after a new write = %v, %v; want new → payments once", deps, err)
	}
	if svcs, err := s.Services(ctx); err != nil || !slices.Contains(svcs, "payments") {
		t.Fatalf("Services after a new write = %v, %v; want the new peer payments", svcs, err)
	}
	if n := count(t, c, "SELECT count() FROM "+db+".spans"); n != 4 {
		t.Fatalf("search table rows = %d, want 4 (3 old, 1 new)", n)
	}
	if n := count(t, c, "SELECT count() FROM "+db+".spans_by_trace"); n != 4 {
		t.Fatalf("spans_by_trace rows = %d, want 4 (3 backfilled, 1 new)", n)
	}
	// Migrating again changes nothing.
	if from, to, err := migrate(ctx, c, cfg, true, nil); err != nil || from != to {
		t.Fatalf("second migrate: %d → %d, %v", from, to, err)
	}
}

func columnNames(t *testing.T, c chsql.Conn, db, table string) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position",
		map[string]string{"db": db, "t": table})
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

func count(t *testing.T, c chsql.Conn, query string) uint64 {
	t.Helper()
	rows, err := c.Query(context.Background(), query, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	return n
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
// a primary-key range read of spans_by_trace that selects one granule.
func TestTraceByIDUsesIndexes(t *testing.T) {
	s := openChdbStore(t, freshDB(t))
	defer s.Close()
	ctx := context.Background()
	// All in one daily partition (one part): the start of a recent day.
	b := time.Now().Add(-2 * time.Hour).Truncate(24 * time.Hour)
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
	for _, want := range []string{"spans_by_trace", "PrimaryKey", "Granules: 1/"} {
		if !strings.Contains(plan.String(), want) {
			t.Fatalf("trace-by-id plan lacks %q:\n%s", want, plan.String())
		}
	}
	got, err := s.Trace(ctx, batch[2500].TraceID)
	if err != nil || len(got) != 1 {
		t.Fatalf("Trace = %v, %v", got, err)
	}
	t.Logf("plan:\n%s", plan.String())
}
