// Package clickhouse is the trace store backend for ClickHouse (a single
// server or a cluster): spans go to a MergeTree table ordered for search
// (service, operation, time) with a trace-id side table filled by a
// materialized view, so a trace by id reads one narrow time range. Writes
// are grouped across concurrent callers into batch inserts with retries and
// a bounded queue; WriteSpans returns once its batch is inserted. The schema
// is created and upgraded by versioned migrations (Migrations, Migrate).
//
// The SQL runs through a small seam (internal/chsql): clickhouse-go/v2 in
// production, the in-process ClickHouse engine of libchdb in the tests (build
// tag chdb). The format and operation are documented in
// docs/storage-clickhouse.md.
package clickhouse
