package embedded

import (
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/meshscope/meshscope/collector/spans"
)

// attrBloom is a per-record Bloom filter over the record's attribute
// key=value pairs (span and resource attributes, values as Attr.String). A
// search with attribute conditions skips every span of a record whose
// filter rules a condition out, without reading the record.
type attrBloom struct {
	bits []uint64
}

const bloomBitsPerKey = 10 // ~1% false positives with 7 probes
const bloomProbes = 7

func attrHash(key, value string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(key)
	d.Write([]byte{0})
	d.WriteString(value)
	return d.Sum64()
}

func appendAttrHashes(dst []uint64, sp *spans.Span) []uint64 {
	for i := range sp.Attrs {
		dst = append(dst, attrHash(sp.Attrs[i].Key, sp.Attrs[i].String()))
	}
	for i := range sp.Resource {
		dst = append(dst, attrHash(sp.Resource[i].Key, sp.Resource[i].String()))
	}
	return dst
}

// newAttrBloom builds a filter of the distinct hashes (hashes is reordered).
func newAttrBloom(hashes []uint64) *attrBloom {
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	words := (len(hashes)*bloomBitsPerKey + 63) / 64
	b := &attrBloom{bits: make([]uint64, max(words, 1))}
	for _, h := range hashes {
		b.add(h)
	}
	return b
}

func (b *attrBloom) probe(h uint64, i uint64) (word int, mask uint64) {
	m := uint64(len(b.bits)) * 64
	h2 := h>>33 | h<<31 | 1
	bit := (h + i*h2) % m
	return int(bit / 64), 1 << (bit % 64)
}

func (b *attrBloom) add(h uint64) {
	for i := range uint64(bloomProbes) {
		w, m := b.probe(h, i)
		b.bits[w] |= m
	}
}

func (b *attrBloom) mayContain(h uint64) bool {
	for i := range uint64(bloomProbes) {
		w, m := b.probe(h, i)
		if b.bits[w]&m == 0 {
			return false
		}
	}
	return true
}

func (b *attrBloom) bytes() int { return len(b.bits) * 8 }
