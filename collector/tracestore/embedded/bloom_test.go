package embedded

import (
	"fmt"
	"testing"
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
	if rate := float64(fp) / 100000; rate > 0.03 {
		t.Fatalf("false positive rate %.3f, want about 0.01", rate)
	}
	if b.mayContain(attrHash("request.i", "d0")) && b.mayContain(attrHash("request.id0", "")) {
		t.Fatal("key/value boundary is not part of the hash")
	}
}
