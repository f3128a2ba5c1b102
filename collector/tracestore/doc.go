// Package tracestore declares the contract every trace store backend meets
// (the embedded store in tracestore/embedded, ClickHouse in
// tracestore/clickhouse) as small one-method interfaces, plus the query
// types they share. The conformance suite in tracestore/storetest runs the
// same cases against every backend.
package tracestore
