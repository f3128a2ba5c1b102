// Package chsql is the small SQL seam of the ClickHouse trace store: the
// three things the store does with a ClickHouse engine (run a statement,
// insert rows, read rows). The production implementation speaks the native
// protocol through clickhouse-go; the test implementation runs the very same
// SQL text on the in-process ClickHouse engine of libchdb.
//
// Query parameters use ClickHouse's server-side syntax {name:Type}; their
// values are passed as text. The store only passes hex digits and decimal
// numbers, so no value ever needs escaping on any path.
package chsql

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// Conn is a connection to one ClickHouse engine.
type Conn interface {
	// Exec runs a statement that returns no rows (DDL, ALTER, INSERT ... SELECT).
	Exec(ctx context.Context, query string, params map[string]string) error
	// Query runs a SELECT. The caller closes the rows.
	Query(ctx context.Context, query string, params map[string]string) (Rows, error)
	// Insert runs insert (an "INSERT INTO db.table (col, ...)" statement with
	// an explicit column list and no data) with rows as its data. Each row
	// holds one Go value per column, of the types listed in Row.
	Insert(ctx context.Context, insert string, rows [][]any) error
	// Close releases the connection.
	Close() error
}

// Rows is the result of a Query. Scan destinations are pointers to:
// string (String, LowCardinality(String), FixedString), uint8, uint64, int64,
// float64 (the ClickHouse types of the same name), time.Time (DateTime64),
// *Map (Map(K, V)), []string and []time.Time (arrays).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Map is an ordered ClickHouse Map value (an Array(Tuple(K, V)) underneath):
// keys keep the order they were put in. It implements clickhouse-go's
// column.IterableOrderedMap so the production driver appends and scans it
// directly.
type Map struct {
	Keys   []any
	Values []any
}

// Put appends a key/value pair.
func (m *Map) Put(key, value any) {
	m.Keys = append(m.Keys, key)
	m.Values = append(m.Values, value)
}

// Len is the number of pairs.
func (m *Map) Len() int { return len(m.Keys) }

// Iterator walks the pairs in order.
func (m *Map) Iterator() column.MapIterator { return &mapIter{m: m, i: -1} }

var _ column.IterableOrderedMap = (*Map)(nil)

type mapIter struct {
	m *Map
	i int
}

func (it *mapIter) Next() bool { it.i++; return it.i < len(it.m.Keys) }
func (it *mapIter) Key() any   { return it.m.Keys[it.i] }
func (it *mapIter) Value() any { return it.m.Values[it.i] }
