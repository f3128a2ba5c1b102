package embedded

import (
	"container/list"
	"sync"
)

type recordKey struct {
	seg uint32
	off uint32
}

type cacheEntry struct {
	key recordKey
	raw []byte
}

// recordCache is a byte-bounded LRU of decompressed records, shared by
// concurrent readers.
type recordCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[recordKey]*list.Element
}

func newRecordCache(maxBytes int64) *recordCache {
	return &recordCache{max: maxBytes, ll: list.New(), items: map[recordKey]*list.Element{}}
}

func (c *recordCache) get(k recordKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).raw, true
	}
	return nil, false
}

func (c *recordCache) put(k recordKey, raw []byte) {
	if int64(len(raw)) > c.max/4 {
		return // one huge record must not flush the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{k, raw})
	c.size += int64(len(raw))
	for c.size > c.max {
		e := c.ll.Back()
		ent := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.items, ent.key)
		c.size -= int64(len(ent.raw))
	}
}

func (c *recordCache) dropSegment(seg uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if k.seg == seg {
			c.ll.Remove(e)
			delete(c.items, k)
			c.size -= int64(len(e.Value.(*cacheEntry).raw))
		}
	}
}
