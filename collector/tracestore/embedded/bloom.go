package embedded

import (
	"slices"
	"strconv"

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

// 20 bits per distinct pair and 10 probes: ~0.01 % false positives, so a
// rare value makes almost no record be read in vain (each false positive
// costs a record decompression). Memory: ~2.5 bytes per pair.
const bloomBitsPerKey = 20
const bloomProbes = 10

// attrHash hashes one key=value pair (value as Attr.String renders it).
func attrHash(key, value string) uint64 {
	return mixHash(xxhash.Sum64String(key), xxhash.Sum64String(value))
}

func mixHash(k, v uint64) uint64 {
	h := k*0x9e3779b97f4a7c15 ^ v
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>29
}

// attrValueHash hashes a's text form without building it for the common
// types (the result equals xxhash.Sum64String(a.String())).
func attrValueHash(a *spans.Attr) uint64 {
	switch a.Type {
	case spans.TypeString:
		return xxhash.Sum64String(a.Str)
	case spans.TypeInt:
		var buf [24]byte
		return xxhash.Sum64(strconv.AppendInt(buf[:0], a.Int, 10))
	case spans.TypeBool:
		if a.Bool {
			return xxhash.Sum64String("true")
		}
		return xxhash.Sum64String("false")
	}
	return xxhash.Sum64String(a.String())
}

func appendAttrHashes(dst []uint64, sp *spans.Span) []uint64 {
	for i := range sp.Attrs {
		dst = append(dst, mixHash(xxhash.Sum64String(sp.Attrs[i].Key), attrValueHash(&sp.Attrs[i])))
	}
	for i := range sp.Resource {
		dst = append(dst, mixHash(xxhash.Sum64String(sp.Resource[i].Key), attrValueHash(&sp.Resource[i])))
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
