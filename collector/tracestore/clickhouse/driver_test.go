package clickhouse

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	chwire "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	chproto "github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/meshscope/meshscope/collector/spans"
)

// spansColumnTypes reads the column types of the spans table from its DDL
// (migration 1), so the test follows the schema.
func spansColumnTypes(t *testing.T) map[string]string {
	t.Helper()
	ddl := Migrations(Config{DSN: "clickhouse://h:9000/traces"})[0].Statements[0]
	re := regexp.MustCompile(`(?m)^    ([a-z_]+) (.+?)(?: CODEC\(.*\))?,$`)
	types := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(ddl, -1) {
		if m[1] == "INDEX" {
			continue
		}
		types[m[1]] = m[2]
	}
	return types
}

// TestDriverColumnsTakeRows appends the store's insert rows to
// clickhouse-go's own column encoders for the schema's types, and scans them
// back into the store's scan destinations: the production driver accepts the
// values and yields the span unchanged (no server needed for this part of
// the wire path).
func TestDriverColumnsTakeRows(t *testing.T) {
	types := spansColumnTypes(t)
	cols := strings.Split(spanColumns, ", ")
	if len(types) != len(cols) {
		t.Fatalf("DDL has %d columns, insert lists %d: %v", len(types), len(cols), types)
	}
	b := time.Unix(1700000000, 123456789)
	sp := spans.Span{
		TraceID: spans.TraceID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}, SpanID: spans.SpanID{1, 0, 0, 0, 0, 0, 0, 2},
		ParentSpanID: spans.SpanID{3}, TraceState: "a=b", Service: "web", Name: "GET /", Kind: spans.KindServer,
		StartUnixNano: b.UnixNano(), EndUnixNano: b.UnixNano() + 1500, StatusCode: spans.StatusError, StatusMessage: "boom",
		Attrs:    []spans.Attr{spans.StringAttr("z", "last"), spans.IntAttr("a", -3), spans.FloatAttr("f", 0.1), spans.BoolAttr("b", true), {Key: "bytes", Type: spans.TypeBytes, Str: "\x00\xff"}},
		Resource: []spans.Attr{spans.StringAttr("host", "n1")},
		Scope:    "s", ScopeVersion: "1",
		Events: []spans.Event{{TimeUnixNano: b.UnixNano() + 5, Name: "e", Attrs: []spans.Attr{spans.IntAttr("n", 1)}}, {TimeUnixNano: b.UnixNano() + 6, Name: "f"}},
		Links:  []spans.Link{{TraceID: spans.TraceID{7}, SpanID: spans.SpanID{8}, Attrs: []spans.Attr{spans.BoolAttr("x", false)}}},
	}
	// Encode a native-protocol block the way a batch insert does, decode it
	// the way query results are read, scan into the store's destinations.
	block := chproto.NewBlock()
	block.ServerContext.Timezone = time.UTC
	for _, name := range cols {
		if err := block.AddColumn(name, column.Type(types[name])); err != nil {
			t.Fatalf("column %s %s: %v", name, types[name], err)
		}
	}
	if err := block.Append(spanRow(&sp)...); err != nil {
		t.Fatalf("clickhouse-go refuses the insert row: %v", err)
	}
	var buf chwire.Buffer
	if err := block.Encode(&buf, 0); err != nil {
		t.Fatal(err)
	}
	decoded := chproto.NewBlock()
	decoded.ServerContext.Timezone = time.UTC
	if err := decoded.Decode(chwire.NewReader(bytes.NewReader(buf.Buf)), 0); err != nil {
		t.Fatal(err)
	}
	var r spanScan
	dest := r.dest()
	for i, col := range decoded.Columns {
		if err := col.ScanRow(dest[i], 0); err != nil {
			t.Fatalf("clickhouse-go cannot scan %s %s into %T: %v", cols[i], types[cols[i]], dest[i], err)
		}
	}
	got, err := r.span()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", sp) {
		t.Fatalf("span through clickhouse-go columns:\n got %#v\nwant %#v", got, sp)
	}
}
