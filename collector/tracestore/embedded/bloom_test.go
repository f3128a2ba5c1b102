package embedded

import (
	"fmt"
	"testing"

	"github.com/meshscope/meshscope/collector/spans"
)

func TestAttrBloom(t *testing.T) {
	var hs []uint64
	for i := range 5000 {
		hs = append(hs, attrHash("request.id", fmt.Sprint(i)))
	}
	hs = append(hs, hs[:1000]...) // duplicates do not inflate the filter
	b := newAttrBloom(hs)
	if b.bytes() > 5000*bloomBitsPerKey/8+8 {
		t.Fatalf("filter of %d bytes for 5000 distinct keys", b.bytes())
	}
	for i := range 5000 {
		if !b.mayContain(attrHash("request.id", fmt.Sprint(i))) {
			t.Fatalf("false negative for %d", i)
		}
	}
	fp := 0
	for i := 5000; i < 105000; i++ {
		if b.mayContain(attrHash("request.id", fmt.Sprint(i))) {
			fp++
		}
	}
	if rate := float64(fp) / 100000; rate > 0.001 {
		t.Fatalf("false positive rate %.4f, want about 0.0001", rate)
	}
	if b.mayContain(attrHash("request.i", "d0")) && b.mayContain(attrHash("request.id0", "")) {
		t.Fatal("key/value boundary is not part of the hash")
	}
}

// The index side (typed attributes) and the query side (text) hash alike.
func TestAttrValueHashMatchesText(t *testing.T) {
	for _, a := range []spans.Attr{
		spans.StringAttr("k", "v"), spans.StringAttr("k", ""), spans.IntAttr("k", -42), spans.IntAttr("k", 1<<62),
		spans.BoolAttr("k", true), spans.BoolAttr("k", false), spans.FloatAttr("k", 0.1), spans.FloatAttr("k", 1e21),
		{Key: "k", Type: spans.TypeBytes, Str: "\x00\xff"},
	} {
		sp := spans.Span{Attrs: []spans.Attr{a}}
		if got, want := appendAttrHashes(nil, &sp)[0], attrHash(a.Key, a.String()); got != want {
			t.Fatalf("%+v: index hash %x, query hash %x", a, got, want)
		}
	}
}
