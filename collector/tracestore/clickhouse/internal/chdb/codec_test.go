package chdb

import (
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

func TestParseType(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"String", "String"},
		{"FixedString(16)", "FixedString"},
		{"DateTime64(9, 'UTC')", "DateTime64"},
		{"Map(LowCardinality(String), UInt8)", "Map"},
		{"Array(Map(String, Array(Nullable(Int64))))", "Array"},
		{"Tuple(String, UInt8)", "Tuple"},
	} {
		got, err := parseType(c.in)
		if err != nil || got.name != c.want {
			t.Fatalf("parseType(%q) = %+v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"Map(String", "Array(String))", "FixedString(x)"} {
		if _, err := parseType(bad); err == nil {
			t.Fatalf("parseType(%q) succeeded", bad)
		}
	}
}

// TestRowBinaryRoundTrip encodes values for a table header and decodes them
// as RowBinaryWithNamesAndTypes output.
func TestRowBinaryRoundTrip(t *testing.T) {
	types := []string{"DateTime64(9)", "FixedString(4)", "LowCardinality(String)", "Int64", "UInt8", "Float64", "Map(LowCardinality(String), UInt8)", "Array(DateTime64(9))"}
	ts := time.Unix(1, 5)
	m := &chsql.Map{}
	m.Put("k", uint8(4))
	row := []any{ts, "ab", "svc", int64(-1), uint8(7), 1.5, m, []time.Time{ts}}
	// Header: column count, names, types.
	hdr := []byte{byte(len(types))}
	for range types {
		hdr = append(hdr, 1, 'c')
	}
	var data []byte
	for i, ty := range types {
		hdr = append(hdr, byte(len(ty)))
		hdr = append(hdr, ty...)
		pt, err := parseType(ty)
		if err != nil {
			t.Fatal(err)
		}
		if data, err = encodeValue(data, pt, row[i]); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := NewRows(append(hdr, data...))
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	var (
		gts   time.Time
		id, s string
		n     int64
		u     uint8
		f     float64
		gm    chsql.Map
		at    []time.Time
	)
	if err := rows.Scan(&gts, &id, &s, &n, &u, &f, &gm, &at); err != nil {
		t.Fatal(err)
	}
	if !gts.Equal(ts) || id != "ab\x00\x00" || s != "svc" || n != -1 || u != 7 || f != 1.5 || gm.Values[0] != uint8(4) || !at[0].Equal(ts) {
		t.Fatalf("decoded %v %q %q %d %d %v %v %v", gts, id, s, n, u, f, gm, at)
	}
	if rows.Next() {
		t.Fatal("extra row")
	}
}

// FuzzRows: malformed engine output is an error, never a crash.
func FuzzRows(f *testing.F) {
	f.Add([]byte{1, 1, 'a', 6, 'S', 't', 'r', 'i', 'n', 'g', 2, 'h', 'i'})
	f.Add([]byte{1, 1, 'a', 5, 'U', 'I', 'n', 't', '8'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := NewRows(b)
		if err != nil {
			return
		}
		for rows.Next() {
			dest := make([]any, len(rows.types))
			for i := range dest {
				var v any
				dest[i] = &v
			}
			_ = rows.Scan(dest...)
		}
	})
}
