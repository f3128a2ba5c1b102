package clickhouse

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// Migration is one versioned step of the schema. Its statements are
// idempotent (IF NOT EXISTS), so a step interrupted half-way is simply run
// again; the version is recorded in <db>.schema_migrations after the last
// statement succeeded.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// schema renders the DDL for one configuration: table names, the cluster
// clause, engines and TTL.
type schema struct {
	db        string
	cluster   string
	retention time.Duration // 0: no TTL
}

func newSchema(cfg Config) schema {
	cfg = cfg.withDefaults()
	s := schema{db: cfg.database(), cluster: cfg.Cluster, retention: cfg.Retention.Round(time.Second)}
	if cfg.KeepForever {
		s.retention = 0
	}
	return s
}

// onCluster is the ON CLUSTER clause (empty on a single server).
func (s schema) onCluster() string {
	if s.cluster == "" {
		return ""
	}
	return " ON CLUSTER " + s.cluster
}

// local is the name of the table that stores rows: table itself on a single
// server, table_local (replicated) behind a Distributed table on a cluster.
func (s schema) local(table string) string {
	if s.cluster == "" {
		return s.db + "." + table
	}
	return s.db + "." + table + "_local"
}

// table is the name reads and inserts use.
func (s schema) table(name string) string { return s.db + "." + name }

// engine is the MergeTree-family engine kind ("MergeTree",
// "SummingMergeTree", ...), replicated on a cluster.
func (s schema) engine(kind, table string, args ...string) string {
	if s.cluster == "" {
		if len(args) == 0 {
			return kind
		}
		return kind + "(" + strings.Join(args, ", ") + ")"
	}
	all := append([]string{fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s_local'", s.db, table), "'{replica}'"}, args...)
	return "Replicated" + kind + "(" + strings.Join(all, ", ") + ")"
}

// ttl is the TTL clause on expr (a DateTime expression), or empty.
func (s schema) ttl(expr string) string {
	if s.retention <= 0 {
		return ""
	}
	return fmt.Sprintf("\nTTL %s + INTERVAL %d SECOND", expr, int64(s.retention/time.Second))
}

// distributed creates the Distributed table over a local one on a cluster.
func (s schema) distributed(name, shardKey string) []string {
	if s.cluster == "" {
		return nil
	}
	return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s_local, %s)",
		s.table(name), s.onCluster(), s.local(name), s.cluster, s.db, name, shardKey)}
}

// migrationsTable records applied versions. On a cluster every node keeps a
// replica of one shared log (no {shard} in its path).
func (s schema) migrationsTable() string {
	engine := "MergeTree"
	if s.cluster != "" {
		engine = fmt.Sprintf("ReplicatedMergeTree('/clickhouse/tables/%s/schema_migrations', '{shard}-{replica}')", s.db)
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations%s (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = %s
ORDER BY version`, s.db, s.onCluster(), engine)
}

// spanTableColumns are the columns of a table holding whole spans (the
// first spans table and spans_by_trace), in the order of spanColumns.
const spanTableColumns = `    timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id FixedString(16) CODEC(ZSTD(1)),
    span_id FixedString(8) CODEC(ZSTD(1)),
    parent_span_id FixedString(8) CODEC(ZSTD(1)),
    trace_state String CODEC(ZSTD(1)),
    service LowCardinality(String) CODEC(ZSTD(1)),
    name LowCardinality(String) CODEC(ZSTD(1)),
    kind UInt8 CODEC(ZSTD(1)),
    duration Int64 CODEC(T64, ZSTD(1)),
    status_code UInt8 CODEC(ZSTD(1)),
    status_message String CODEC(ZSTD(1)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    attribute_types Map(LowCardinality(String), UInt8) CODEC(ZSTD(1)),
    resource Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_types Map(LowCardinality(String), UInt8) CODEC(ZSTD(1)),
    scope LowCardinality(String) CODEC(ZSTD(1)),
    scope_version LowCardinality(String) CODEC(ZSTD(1)),
    event_times Array(DateTime64(9)) CODEC(ZSTD(1)),
    event_names Array(LowCardinality(String)) CODEC(ZSTD(1)),
    event_attributes Array(String) CODEC(ZSTD(1)),
    link_trace_ids Array(FixedString(16)) CODEC(ZSTD(1)),
    link_span_ids Array(FixedString(8)) CODEC(ZSTD(1)),
    link_attributes Array(String) CODEC(ZSTD(1)),
`

// searchDroppedColumns are the columns migration 7 drops from the search
// table: trace by id reads spans_by_trace, search needs only what it filters
// on and the trace id it returns.
var searchDroppedColumns = []string{"span_id", "parent_span_id", "trace_state", "status_message", "attribute_types", "resource_types",
	"scope", "scope_version", "event_times", "event_names", "event_attributes", "link_trace_ids", "link_span_ids", "link_attributes"}

// searchColumns are the columns spans_mv copies into the search table.
const searchColumns = "timestamp, trace_id, service, name, kind, duration, status_code, attributes, resource"

// peerHost is the host a CLIENT span names (server.address, else
// net.peer.name).
const peerHost = "if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name'])"

// peerExpr is spans.Span.PeerService in SQL, over the columns kind and
// attributes: the service a CLIENT span calls, or the empty string.
const peerExpr = "if(kind != 3, '', multiIf(\n" +
	"    attributes['mesh.destination.service'] NOT IN ('', 'unknown', 'external'), attributes['mesh.destination.service'],\n" +
	"    attributes['peer.service'] != '', attributes['peer.service'],\n" +
	"    " + peerHost + " = 'localhost' OR match(" + peerHost + ", '[.:]'), '',\n" +
	"    " + peerHost + "))"

// Migrations returns every migration for cfg, oldest first.
func Migrations(cfg Config) []Migration { return newSchema(cfg).migrations() }

func (s schema) migrations() []Migration {
	settings := "\nSETTINGS index_granularity = 8192"
	// Spans use small granules: a trace by id reads whole granules of every
	// column wherever its spans are (they are spread over the services'
	// sort ranges), so a granule is what one lookup costs per span.
	spanSettings := "\nSETTINGS index_granularity = 1024"
	if s.retention > 0 {
		settings += ", ttl_only_drop_parts = 1"
		spanSettings += ", ttl_only_drop_parts = 1"
	}
	spans := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s%s (
%s    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 1,
    INDEX idx_duration duration TYPE minmax GRANULARITY 1
) ENGINE = %s
PARTITION BY toDate(timestamp)
ORDER BY (service, name, toDateTime(timestamp))%s%s`,
		s.local("spans"), s.onCluster(), spanTableColumns, s.engine("MergeTree", "spans"), s.ttl("toDateTime(timestamp)"), spanSettings)

	traceIndex := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s%s (
    trace_id FixedString(16) CODEC(ZSTD(1)),
    start_min DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    start_max DateTime64(9) CODEC(Delta(8), ZSTD(1))
) ENGINE = %s
PARTITION BY toDate(start_min)
ORDER BY (trace_id, toDateTime(start_min))%s%s`,
		s.local("trace_index"), s.onCluster(), s.engine("MergeTree", "trace_index"), s.ttl("toDateTime(start_min)"), settings)
	traceIndexMV := fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.trace_index_mv%s TO %s AS
SELECT trace_id, min(timestamp) AS start_min, max(timestamp) AS start_max
FROM %s
GROUP BY trace_id`, s.db, s.onCluster(), s.local("trace_index"), s.local("spans"))

	operations := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s%s (
    service LowCardinality(String),
    name LowCardinality(String),
    kind UInt8,
    last_seen DateTime
) ENGINE = %s
ORDER BY (service, kind, name)%s`,
		s.local("operations"), s.onCluster(), s.engine("ReplacingMergeTree", "operations", "last_seen"), s.ttl("last_seen"))
	operationsMV := fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.operations_mv%s TO %s AS
SELECT service, name, kind, max(toDateTime(timestamp)) AS last_seen
FROM %s
GROUP BY service, name, kind`, s.db, s.onCluster(), s.local("operations"), s.local("spans"))

	deps := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s%s (
    minute DateTime CODEC(Delta(4), ZSTD(1)),
    parent LowCardinality(String),
    child LowCardinality(String),
    calls UInt64,
    errors UInt64
) ENGINE = %s
PARTITION BY toDate(minute)
ORDER BY (minute, parent, child)%s%s`,
		s.local("dependencies"), s.onCluster(), s.engine("SummingMergeTree", "dependencies"), s.ttl("minute"), settings)
	depsMV := fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.dependencies_mv%s TO %s AS
SELECT
    toStartOfMinute(toDateTime(timestamp)) AS minute,
    service AS parent,
    multiIf(attributes['peer.service'] != '', attributes['peer.service'],
            attributes['server.address'] != '', attributes['server.address'],
            attributes['net.peer.name']) AS child,
    count() AS calls,
    countIf(status_code = 2) AS errors
FROM %s
WHERE kind IN (3, 4) AND child != ''
GROUP BY minute, parent, child`, s.db, s.onCluster(), s.local("dependencies"), s.local("spans"))

	// Backfills for databases upgraded with spans already stored (a no-op on
	// a fresh database). The side tables tolerate a repeated backfill: the
	// trace index is read with min/max, operations are deduplicated.
	backfillTraceIndex := fmt.Sprintf(`INSERT INTO %s (trace_id, start_min, start_max)
SELECT trace_id, min(timestamp), max(timestamp) FROM %s GROUP BY trace_id`, s.table("trace_index"), s.table("spans"))
	backfillOperations := fmt.Sprintf(`INSERT INTO %s (service, name, kind, last_seen)
SELECT service, name, kind, max(toDateTime(timestamp)) FROM %s GROUP BY service, name, kind`, s.table("operations"), s.table("spans"))

	addIndex := func(name, expr string) string {
		return fmt.Sprintf("ALTER TABLE %s%s ADD INDEX IF NOT EXISTS %s %s TYPE bloom_filter(0.01) GRANULARITY 1",
			s.local("spans"), s.onCluster(), name, expr)
	}

	// The data table: whole spans ordered by trace id, so trace by id is a
	// primary-key range read of a few granules. It is the insert target;
	// spans_mv copies the search columns into spans in the same insert
	// (and spans' own views fill the side tables from there). Replacing on
	// (trace_id, span_id) folds a span delivered twice, and a repeated
	// backfill, into one row when parts merge.
	byTraceSettings := "\nSETTINGS index_granularity = 1024"
	if s.retention > 0 {
		byTraceSettings += ", ttl_only_drop_parts = 1"
	}
	byTrace := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s%s (
%s) ENGINE = %s
PARTITION BY toDate(timestamp)
PRIMARY KEY trace_id
ORDER BY (trace_id, span_id)%s%s`,
		s.local("spans_by_trace"), s.onCluster(), strings.TrimSuffix(spanTableColumns, ",\n")+"\n", s.engine("ReplacingMergeTree", "spans_by_trace"),
		s.ttl("toDateTime(timestamp)"), byTraceSettings)
	// Spans stored before the split are copied once (a no-op on a fresh
	// database); a repetition is folded by the replacing merge and hidden
	// from reads by LIMIT 1 BY span_id.
	backfillByTrace := fmt.Sprintf(`INSERT INTO %s (%s)
SELECT %s FROM %s`, s.table("spans_by_trace"), spanColumns, spanColumns, s.table("spans"))
	spansMV := fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.spans_mv%s TO %s AS
SELECT %s
FROM %s`, s.db, s.onCluster(), s.local("spans"), searchColumns, s.local("spans_by_trace"))

	// The search table sheds what search never reads (and the trace id
	// bloom filter, which only trace by id used).
	shed := func(table string, index bool) string {
		var cmds []string
		if index {
			cmds = append(cmds, "DROP INDEX IF EXISTS idx_trace_id")
		}
		for _, c := range searchDroppedColumns {
			cmds = append(cmds, "DROP COLUMN IF EXISTS "+c)
		}
		return fmt.Sprintf("ALTER TABLE %s%s\n    %s", table, s.onCluster(), strings.Join(cmds, ",\n    "))
	}
	shedSearch := []string{shed(s.local("spans"), true)}
	if s.cluster != "" {
		shedSearch = append(shedSearch, shed(s.table("spans"), false))
	}

	// Peer services of CLIENT spans: a column of the search table computed
	// at insert (and on read for older parts) with a Bloom filter index,
	// so a search by service finds the callers of services without spans
	// of their own; and a small table listing them, like operations.
	peerColumn := []string{
		fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN IF NOT EXISTS peer LowCardinality(String) MATERIALIZED %s", s.local("spans"), s.onCluster(), peerExpr),
		fmt.Sprintf("ALTER TABLE %s%s ADD INDEX IF NOT EXISTS idx_peer peer TYPE bloom_filter(0.01) GRANULARITY 1", s.local("spans"), s.onCluster()),
	}
	if s.cluster != "" {
		peerColumn = append(peerColumn, fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN IF NOT EXISTS peer LowCardinality(String)", s.table("spans"), s.onCluster()))
	}
	peers := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s%s (
    peer LowCardinality(String),
    name LowCardinality(String),
    last_seen DateTime
) ENGINE = %s
ORDER BY (peer, name)%s`,
		s.local("peers"), s.onCluster(), s.engine("ReplacingMergeTree", "peers", "last_seen"), s.ttl("last_seen"))
	peersMV := fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.peers_mv%s TO %s AS
SELECT %s AS peer, name, max(toDateTime(timestamp)) AS last_seen
FROM %s
WHERE kind = 3
GROUP BY peer, name
HAVING peer != ''`, s.db, s.onCluster(), s.local("peers"), peerExpr, s.local("spans"))
	backfillPeers := fmt.Sprintf(`INSERT INTO %s (peer, name, last_seen)
SELECT %s AS p, name, max(toDateTime(timestamp)) FROM %s WHERE kind = 3 GROUP BY p, name HAVING p != ''`, s.table("peers"), peerExpr, s.table("spans"))

	return []Migration{
		{1, "spans table", append([]string{spans}, s.distributed("spans", "cityHash64(trace_id)")...)},
		{2, "trace id index table and view", append(append([]string{traceIndex}, s.distributed("trace_index", "cityHash64(trace_id)")...), traceIndexMV, backfillTraceIndex)},
		{3, "operations table and view", append(append([]string{operations}, s.distributed("operations", "cityHash64(service)")...), operationsMV, backfillOperations)},
		{4, "service dependencies per minute", append(append([]string{deps}, s.distributed("dependencies", "cityHash64(parent, child)")...), depsMV)},
		{5, "attribute key and value skip indexes", []string{
			addIndex("idx_attribute_keys", "mapKeys(attributes)"),
			addIndex("idx_attribute_values", "mapValues(attributes)"),
			addIndex("idx_resource_keys", "mapKeys(resource)"),
			addIndex("idx_resource_values", "mapValues(resource)"),
		}},
		{6, "spans_by_trace data table ordered by trace id, backfilled", append(append([]string{byTrace}, s.distributed("spans_by_trace", "cityHash64(trace_id)")...), backfillByTrace)},
		// The view comes after the backfill (a repeated backfill must not
		// flow into the search table and its side tables again).
		{7, "search table filled from spans_by_trace, without the columns only trace by id reads", append([]string{spansMV}, shedSearch...)},
		{8, "peer service of client spans: search column and index, peers table and view, backfilled",
			append(append(append(peerColumn, peers), s.distributed("peers", "cityHash64(peer)")...), peersMV, backfillPeers)},
	}
}

// LatestVersion is the schema version this build writes and reads.
func LatestVersion() int {
	m := newSchema(Config{}).migrations()
	return m[len(m)-1].Version
}

// currentVersion is the highest applied version (0 on an empty database).
func (s schema) currentVersion(ctx context.Context, conn chsql.Conn) (int, error) {
	rows, err := conn.Query(ctx, "SELECT count(), max(version) FROM "+s.db+".schema_migrations", nil)
	if err != nil {
		return 0, fmt.Errorf("read %s.schema_migrations: %w", s.db, err)
	}
	defer rows.Close()
	var n uint64
	var v int64
	if rows.Next() {
		if err := rows.Scan(&n, &v); err != nil {
			return 0, fmt.Errorf("read %s.schema_migrations: %w", s.db, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read %s.schema_migrations: %w", s.db, err)
	}
	if n == 0 {
		return 0, nil
	}
	return int(v), nil
}

// migrate brings the schema to the latest version (apply) or prints the
// statements that would (dry run). It prints what it does to w (may be nil).
func migrate(ctx context.Context, conn chsql.Conn, cfg Config, apply bool, w io.Writer) (from, to int, err error) {
	return migrateTo(ctx, conn, cfg, apply, w, 0)
}

// migrateTo is migrate up to version target (0: the latest).
func migrateTo(ctx context.Context, conn chsql.Conn, cfg Config, apply bool, w io.Writer, target int) (from, to int, err error) {
	if w == nil {
		w = io.Discard
	}
	s := newSchema(cfg)
	all := s.migrations()
	latest := all[len(all)-1].Version
	if apply {
		if err := conn.Exec(ctx, s.migrationsTable(), nil); err != nil {
			return 0, 0, fmt.Errorf("create %s.schema_migrations: %w", s.db, err)
		}
	}
	cur, err := s.currentVersion(ctx, conn)
	if err != nil {
		if apply {
			return 0, 0, err
		}
		// Dry run on a database without the bookkeeping table: everything is pending.
		fmt.Fprintf(w, "-- %s.schema_migrations not found (%v): the database is at version 0\n", s.db, err)
		fmt.Fprintf(w, "%s;\n\n", s.migrationsTable())
		cur = 0
	}
	if cur > latest {
		return cur, cur, fmt.Errorf("database %s is at schema version %d, newer than this build's %d: upgrade meshscope", s.db, cur, latest)
	}
	fmt.Fprintf(w, "-- database %s: schema version %d, latest %d\n", s.db, cur, latest)
	from = cur
	for _, m := range all {
		if m.Version <= cur || (target > 0 && m.Version > target) {
			continue
		}
		fmt.Fprintf(w, "-- migration %d: %s\n", m.Version, m.Name)
		for _, st := range m.Statements {
			fmt.Fprintf(w, "%s;\n\n", st)
			if !apply {
				continue
			}
			if err := conn.Exec(ctx, st, nil); err != nil {
				return from, cur, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
		}
		if !apply {
			continue
		}
		rec := fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, applied_at) SELECT {version:UInt32}, {name:String}, now()", s.db)
		if err := conn.Exec(ctx, rec, map[string]string{"version": fmt.Sprint(m.Version), "name": m.Name}); err != nil {
			return from, cur, fmt.Errorf("record migration %d: %w", m.Version, err)
		}
		cur = m.Version
	}
	if !apply {
		return from, from, nil
	}
	return from, cur, nil
}

// PrintMigrations writes every statement of the schema for cfg to w, without
// a server (the bookkeeping table first, then each migration): what
// `meshscope migrate` would apply to an empty database.
func PrintMigrations(w io.Writer, cfg Config) error {
	s := newSchema(cfg)
	if _, err := fmt.Fprintf(w, "%s;\n\n", s.migrationsTable()); err != nil {
		return err
	}
	for _, m := range s.migrations() {
		if _, err := fmt.Fprintf(w, "-- migration %d: %s\n", m.Version, m.Name); err != nil {
			return err
		}
		for _, st := range m.Statements {
			if _, err := fmt.Fprintf(w, "%s;\n\n", st); err != nil {
				return err
			}
		}
	}
	return nil
}
