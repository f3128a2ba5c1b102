package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// fakeConn is a scripted chsql.Conn: it answers SELECT version() with
// version, accepts every statement, and runs insert through insertFn.
type fakeConn struct {
	version string

	mu       sync.Mutex
	execs    []string
	inserts  int
	rows     int
	insertFn func(ctx context.Context, rows [][]any) error
}

func (f *fakeConn) Exec(ctx context.Context, query string, params map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs = append(f.execs, query)
	return nil
}

func (f *fakeConn) Query(ctx context.Context, query string, params map[string]string) (chsql.Rows, error) {
	switch {
	case query == "SELECT version()":
		return &fakeRows{rows: [][]any{{f.version}}}, nil
	case strings.Contains(query, "schema_migrations"):
		return &fakeRows{rows: [][]any{{uint64(0), int64(0)}}}, nil
	}
	return nil, fmt.Errorf("fake: unexpected query %q", query)
}

func (f *fakeConn) Insert(ctx context.Context, insert string, rows [][]any) error {
	var err error
	if f.insertFn != nil {
		err = f.insertFn(ctx, rows)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inserts++
	if err == nil {
		f.rows += len(rows)
	}
	return err
}

func (f *fakeConn) Close() error { return nil }

func (f *fakeConn) stats() (inserts, rows int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inserts, f.rows
}

type fakeRows struct {
	rows [][]any
	i    int
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.rows) }
func (r *fakeRows) Scan(dest ...any) error {
	row := r.rows[r.i-1]
	if len(dest) != len(row) {
		return errors.New("fake: column count")
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *string:
			*d = row[i].(string)
		case *uint64:
			*d = row[i].(uint64)
		case *int64:
			*d = row[i].(int64)
		default:
			return fmt.Errorf("fake: destination %T", d)
		}
	}
	return nil
}
func (r *fakeRows) Err() error   { return nil }
func (r *fakeRows) Close() error { return nil }
