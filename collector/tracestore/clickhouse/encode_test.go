package clickhouse

import (
	"fmt"
	"math"
	"testing"

	"github.com/meshscope/meshscope/collector/spans"
)

func TestAttrTextRoundTrip(t *testing.T) {
	for _, a := range []spans.Attr{
		spans.StringAttr("s", ""),
		spans.StringAttr("s", "größe ✓\x00\n"),
		spans.IntAttr("i", math.MinInt64),
		spans.IntAttr("i", math.MaxInt64),
		spans.FloatAttr("f", 0.1),
		spans.FloatAttr("f", 1e300),
		spans.FloatAttr("f", -5e-324),
		spans.FloatAttr("f", math.Inf(-1)),
		spans.BoolAttr("b", false),
		{Key: "x", Type: spans.TypeBytes, Str: "\x00\x01\xff"},
	} {
		values, types := encodeAttrs([]spans.Attr{a})
		got, err := decodeAttrs(values, types)
		if err != nil {
			t.Fatalf("%#v: %v", a, err)
		}
		if len(got) != 1 || fmt.Sprintf("%#v", got[0]) != fmt.Sprintf("%#v", a) {
			t.Fatalf("round trip of %#v = %#v", a, got)
		}
		j, err := decodeJSONAttrs(encodeJSONAttrs([]spans.Attr{a}))
		if err != nil || len(j) != 1 || fmt.Sprintf("%#v", j[0]) != fmt.Sprintf("%#v", a) {
			t.Fatalf("JSON round trip of %#v = %#v, %v", a, j, err)
		}
	}
	// NaN compares unequal to itself: check it separately.
	values, types := encodeAttrs([]spans.Attr{spans.FloatAttr("nan", math.NaN())})
	got, err := decodeAttrs(values, types)
	if err != nil || !math.IsNaN(got[0].Float) {
		t.Fatalf("NaN round trip = %v, %v", got, err)
	}
}

// FuzzDecodeJSONAttrs: stored event/link attributes never crash the reader,
// and whatever decodes re-encodes to the same attributes.
func FuzzDecodeJSONAttrs(f *testing.F) {
	f.Add(``)
	f.Add(`[{"k":"a","v":"x"}]`)
	f.Add(`[{"k":"n","t":1,"v":"12"},{"k":"b","t":3,"v":"true"},{"k":"y","t":4,"v":"00ff"}]`)
	f.Add(`[{"k":"f","t":2,"v":"NaN"}]`)
	f.Add(`[{"k":"bad","t":9,"v":"?"}]`)
	f.Add(`{`)
	f.Fuzz(func(t *testing.T, s string) {
		attrs, err := decodeJSONAttrs(s)
		if err != nil {
			return
		}
		again, err := decodeJSONAttrs(encodeJSONAttrs(attrs))
		if err != nil {
			t.Fatalf("re-decoding %q: %v", s, err)
		}
		if len(again) != len(attrs) {
			t.Fatalf("re-decoding %q: %d attributes, want %d", s, len(again), len(attrs))
		}
		for i := range attrs {
			if again[i].String() != attrs[i].String() || again[i].Type != attrs[i].Type {
				t.Fatalf("re-decoding %q: %#v, want %#v", s, again[i], attrs[i])
			}
		}
	})
}
