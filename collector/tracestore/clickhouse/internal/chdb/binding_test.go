//go:build chdb

package chdb

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

func openTest(t *testing.T) *Conn {
	t.Helper()
	lib := os.Getenv("MESHSCOPE_CHDB_LIB")
	if lib == "" {
		t.Skip("MESHSCOPE_CHDB_LIB not set (make chdb-deps installs libchdb.so)")
	}
	c, err := Open(lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTrip(t *testing.T) {
	c := openTest(t)
	ctx := context.Background()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS rt",
		"CREATE TABLE rt.t (ts DateTime64(9), id FixedString(4), s LowCardinality(String), n Int64, u UInt8, f Float64, m Map(LowCardinality(String), String), mt Map(LowCardinality(String), UInt8), at Array(DateTime64(9)), as Array(FixedString(2))) ENGINE = MergeTree ORDER BY ts",
	} {
		if err := c.Exec(ctx, q, nil); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ts := time.Unix(1700000000, 123456789)
	m := &chsql.Map{}
	m.Put("k\n", "v\x00\\")
	m.Put("a", "")
	mt := &chsql.Map{}
	mt.Put("x", uint8(3))
	row := []any{ts, "\x00\n\x01 ", "svc", int64(-5), uint8(2), 0.25, m, mt, []time.Time{ts, ts.Add(1)}, []string{"\x00\x01", "ab"}}
	if err := c.Insert(ctx, "INSERT INTO rt.t (ts, id, s, n, u, f, m, mt, at, as)", [][]any{row, row}); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "SELECT ts, id, s, n, u, f, m, mt, at, as, {p:UInt64} + 1 FROM rt.t", map[string]string{"p": "41"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
		var (
			gts    time.Time
			id, s  string
			gn     int64
			u      uint8
			f      float64
			gm     chsql.Map
			gmt    chsql.Map
			at     []time.Time
			as     []string
			answer uint64
		)
		if err := rows.Scan(&gts, &id, &s, &gn, &u, &f, &gm, &gmt, &at, &as, &answer); err != nil {
			t.Fatal(err)
		}
		if !gts.Equal(ts) || id != "\x00\n\x01 " || s != "svc" || gn != -5 || u != 2 || f != 0.25 || answer != 42 {
			t.Fatalf("row = %v %q %q %d %d %v %d", gts, id, s, gn, u, f, answer)
		}
		if gm.Len() != 2 || gm.Keys[0] != "k\n" || gm.Values[0] != "v\x00\\" || gmt.Values[0] != uint8(3) {
			t.Fatalf("maps = %#v %#v", gm, gmt)
		}
		if len(at) != 2 || !at[1].Equal(ts.Add(1)) || as[0] != "\x00\x01" {
			t.Fatalf("arrays = %v %q", at, as)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	if err := c.Exec(ctx, "SELECT * FROM rt.nope", nil); err == nil {
		t.Fatal("query on a missing table succeeded")
	}
}

// TestInsertAnyBytes: binary data of every byte sequence arrives intact
// (inline data after the statement would be cut at an empty line).
func TestInsertAnyBytes(t *testing.T) {
	c := openTest(t)
	ctx := context.Background()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS ab", "CREATE TABLE ab.t (s String) ENGINE = MergeTree ORDER BY tuple()"} {
		if err := c.Exec(ctx, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i), byte(255-i))
	}
	rows := [][]any{{"\n\n"}, {"a\n\nb"}, {"\r\n\r\n;"}, {string(all)}, {""}}
	if err := c.Insert(ctx, "INSERT INTO ab.t (s)", rows); err != nil {
		t.Fatal(err)
	}
	res, err := c.Query(ctx, "SELECT s FROM ab.t", nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for res.Next() {
		var s string
		if err := res.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seen[s] = true
	}
	for _, r := range rows {
		if !seen[r[0].(string)] {
			t.Fatalf("row %q not read back", r[0])
		}
	}
}
