package embedded

import (
	"container/list"
	"sync"
)

// lruCache is a byte-bounded LRU shared by concurrent readers. size gives
// the bytes an entry holds.
type lruCache[K comparable, V any] struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[K]*list.Element
	sizer func(V) int64
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](maxBytes int64, sizer func(V) int64) *lruCache[K, V] {
	return &lruCache[K, V]{max: maxBytes, ll: list.New(), items: map[K]*list.Element{}, sizer: sizer}
}

func (c *lruCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lruCache[K, V]) put(k K, v V) {
	n := c.sizer(v)
	if n > c.max/4 {
		return // one huge entry must not flush the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&lruEntry[K, V]{k, v})
	c.size += n
	for c.size > c.max {
		e := c.ll.Back()
		ent := e.Value.(*lruEntry[K, V])
		c.ll.Remove(e)
		delete(c.items, ent.key)
		c.size -= c.sizer(ent.val)
	}
}

// drop removes every entry whose key matches.
func (c *lruCache[K, V]) drop(match func(K) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if match(k) {
			c.ll.Remove(e)
			delete(c.items, k)
			c.size -= c.sizer(e.Value.(*lruEntry[K, V]).val)
		}
	}
}

type recordKey struct {
	seg uint32
	off uint32
}

// recordCache holds decompressed records.
type recordCache struct{ *lruCache[recordKey, []byte] }

func newRecordCache(maxBytes int64) *recordCache {
	return &recordCache{newLRU[recordKey](maxBytes, func(b []byte) int64 { return int64(len(b)) })}
}

func (c *recordCache) dropSegment(seg uint32) {
	c.drop(func(k recordKey) bool { return k.seg == seg })
}

// blockKey names one decoded block of an index file: file is the index's
// number in its cache (unique per opened file), kind the block's table.
type blockKey struct {
	file uint64
	kind uint8
	n    uint32
}

// sized is a decoded index block and the bytes it holds.
type sized interface{ bytes() int64 }

// indexCache holds decoded blocks of index files (rows, trace ids, trace
// row lists, posting lists, attribute buckets), read with pread: the index
// files are never mapped, so what they cost in RAM is this cache's bound.
type indexCache struct {
	*lruCache[blockKey, sized]
	mu   sync.Mutex
	next uint64
}

func newIndexCache(maxBytes int64) *indexCache {
	return &indexCache{lruCache: newLRU[blockKey](maxBytes, func(v sized) int64 { return v.bytes() + 64 })}
}

// newFile numbers an opened index file.
func (c *indexCache) newFile() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	return c.next
}

func (c *indexCache) dropFile(file uint64) {
	c.drop(func(k blockKey) bool { return k.file == file })
}

// tableKey names the table of one span block: its segment, record and
// place in the record's raw body.
type tableKey struct {
	seg, rec, pos uint32
}

// tableCache holds parsed span block tables, so that reading several spans
// of one block (a trace, a search's candidates) parses its table once.
type tableCache struct {
	*lruCache[tableKey, *blockTable]
}

func newTableCache(maxBytes int64) *tableCache {
	return &tableCache{newLRU[tableKey](maxBytes, func(t *blockTable) int64 { return t.size })}
}

func (c *tableCache) dropSegment(seg uint32) {
	c.drop(func(k tableKey) bool { return k.seg == seg })
}
