package embedded

import (
	"testing"
)

// The LRU evicts the least recently used entries to stay within its byte
// bound, refuses an entry over a quarter of it, and drops by key.
func TestLRUCacheBound(t *testing.T) {
	c := newLRU[int](100, func(b []byte) int64 { return int64(len(b)) })
	for i := range 10 {
		c.put(i, make([]byte, 20))
		if c.size > c.max {
			t.Fatalf("after %d puts: %d bytes cached, bound %d", i+1, c.size, c.max)
		}
		if i == 6 {
			c.get(5) // 5 becomes the most recently used
		}
	}
	for i, want := range map[int]bool{0: false, 4: false, 3: false, 5: true, 6: true, 7: true, 8: true, 9: true} {
		if _, ok := c.get(i); ok != want {
			t.Errorf("entry %d cached: %v, want %v", i, ok, want)
		}
	}
	c.put(100, make([]byte, 26))
	if _, ok := c.get(100); ok {
		t.Error("an entry over a quarter of the bound was cached")
	}
	c.drop(func(k int) bool { return k >= 8 })
	for _, k := range []int{8, 9} {
		if _, ok := c.get(k); ok {
			t.Errorf("entry %d survived drop", k)
		}
	}
	if c.size != 60 {
		t.Errorf("%d bytes accounted after drop, want 60", c.size)
	}
}

// Each opened index file gets its own number, so closing one drops only
// its blocks.
func TestIndexCacheDropFile(t *testing.T) {
	c := newIndexCache(1 << 20)
	a, b := c.newFile(), c.newFile()
	if a == b {
		t.Fatal("two files got the same number")
	}
	for i := range uint32(3) {
		c.put(blockKey{a, kindPosting, i}, rowList{1, 2})
		c.put(blockKey{b, kindPosting, i}, rowList{1, 2})
	}
	c.dropFile(a)
	for i := range uint32(3) {
		_, okA := c.get(blockKey{a, kindPosting, i})
		_, okB := c.get(blockKey{b, kindPosting, i})
		if okA || !okB {
			t.Errorf("block %d: file a cached %v, file b cached %v", i, okA, okB)
		}
	}
}
