// Package clickhouse is the trace store backend for ClickHouse (a single
// server or a cluster): spans are inserted into spans_by_trace, ordered by
// trace id, so a trace by id is a primary-key range read; in the same insert
// a materialized view copies the searched columns into spans, ordered for
// search (service, operation, time), whose views fill the trace index, the
// operations and the service dependencies. Writes
// are grouped across concurrent callers into batch inserts with retries and
// a bounded queue; WriteSpans returns once its batch is inserted. The schema
// is created and upgraded by versioned migrations (Migrations, Migrate).
//
// The SQL runs through a small seam (internal/chsql): clickhouse-go/v2 in
// production, the in-process ClickHouse engine of libchdb in the tests (build
// tag chdb). The format and operation are documented in
// docs/storage-clickhouse.md.
package clickhouse
