// Package chdb runs SQL on the in-process ClickHouse engine of libchdb (the
// npm package @chdb/lib-linux-x64-gnu) for the ClickHouse trace store's
// tests. It implements chsql.Conn, so the store runs its production DDL,
// inserts and queries on a real ClickHouse engine without a server.
//
// The binding (cgo + dlopen) is only built with the build tag chdb; the
// RowBinary codec it uses is plain Go and always built. Inserts are sent as
// "<insert statement> FROM INFILE '<temp file>' FORMAT RowBinary" (rows
// encoded for the table's column types) and results are read in
// RowBinaryWithNamesAndTypes.
package chdb
