package embedded

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/meshscope/meshscope/collector/spans"
)

// A sealed segment's index lives next to it in seg-<id>.idx, written once
// when the segment is sealed (see docs/format/traces.md, "Index file"):
//
//	file    = header(64) directory(nSections × 16) section* crc:uint32le
//	header  = magic "MSTIDX1\n" version:u32 nRows:u32 segSize:u64
//	          minStart:i64 maxStart:i64 segCRC:u32 reserved(20)
//	section = at 8-aligned offsets; the directory holds (offset, length) of each
//
// crc is CRC-32C of every byte before it. All integers little-endian.
const (
	idxMagic     = "MSTIDX1\n"
	idxVersion   = 1
	idxSuffix    = ".idx"
	idxHeader    = 64
	rowSize      = 64
	opEntrySize  = 12
	peerSize     = 8
	recEntrySize = 16
	postDirSize  = 16
)

// Sections, in file order.
const (
	secNames       = iota // (len:uvarint bytes)*: the segment's service and operation names
	secOps                // (svc:u32 op:u32 kind:u8 pad:3)*: sorted
	secPeers              // (peer:u32 op:u32)*: sorted
	secRecs               // (off:u32 len:u32 bloomWord:u32 bloomWords:u32)*: records in file order
	secBlooms             // uint64 words of the records' attribute Bloom filters
	secRows               // rowSize-byte rows sorted by start descending, then trace id, record, offset
	secByTrace            // u32 row numbers sorted by (trace id, row)
	secPostDir            // (key:u8 pad:3 a:u32 b:u32 count:u32)*: sorted by (key, a, b); lists follow each other
	secPostings           // u32 row numbers, ascending within each list
	secDamage             // count:uvarint (off:uvarint n:uvarint why:str)*
	secTraceBloom         // uint64 words of the Bloom filter of the segment's trace ids
	secTagDir             // u32 × (buckets+1): start of each attribute bucket's list in secTagPostings (empty: no tag postings)
	secTagPostings        // u32 row numbers, ascending within each bucket
	nSections
)

// Posting list keys.
const (
	postService   = 1 // a = service
	postOperation = 2 // a = service, b = operation
	postPeer      = 3 // a = peer service of CLIENT spans
)

func idxName(id uint32) string { return fmt.Sprintf("%s%010d%s", segPrefix, id, idxSuffix) }

// postList locates one posting list in the postings section.
type postList struct {
	key   uint8
	a, b  uint32
	first uint32 // index of the list's first entry in the postings section
	count uint32
}

// segIndex is an opened index file. Its sections stay in the file mapping
// (or buffer); only the names, operation and peer sets and the posting
// directory are decoded into memory (a few KiB per segment).
type segIndex struct {
	data     []byte // the whole file
	unmap    func() error
	nRows    int
	segSize  int64
	segCRC   uint32 // CRC-32C of the segment file's segSize bytes
	minStart int64
	maxStart int64
	names    []string
	ops      []opEntry
	peers    [][2]uint32
	recs     []byte
	blooms   []byte
	rows     []byte
	byTrace  []byte
	posts    []postList
	postings []byte
	damaged  []damagedRange
	tbloom   []byte
	tagDir   []byte // buckets+1 u32 list starts; nil when the index has no tag postings
	tagPosts []byte

	// Set by the store after decoding: local name id → global interned id,
	// and the reverse.
	global []uint32
	local  map[uint32]uint32
}

type opEntry struct {
	svc, op uint32
	kind    spans.Kind
}

func le32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[i:]) }
func le64(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[i:]) }

// traceHash is the key of the trace-id Bloom filter.
func traceHash(id spans.TraceID) uint64 { return xxhash.Sum64(id[:]) }

// bloomWordsMayContain probes a Bloom filter stored as little-endian uint64
// words (the layout of attrBloom.bits).
func bloomWordsMayContain(words []byte, h uint64) bool {
	n := uint64(len(words) / 8)
	if n == 0 {
		return false
	}
	m := n * 64
	h2 := h>>33 | h<<31 | 1
	for i := range uint64(bloomProbes) {
		bit := (h + i*h2) % m
		if le64(words, int(bit/64)*8)&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// rowMeta decodes row i with global name ids.
func (x *segIndex) rowMeta(i int) spanMeta {
	r := x.rows[i*rowSize : i*rowSize+rowSize]
	var m spanMeta
	copy(m.trace[:], r[:16])
	m.start = int64(le64(r, 16))
	m.dur = int64(le64(r, 24))
	rec := le32(r, 32)
	m.rec = le32(x.recs, int(rec)*recEntrySize)
	m.recLen = le32(x.recs, int(rec)*recEntrySize+4)
	m.off = le32(r, 36)
	m.length = le32(r, 40)
	m.svc = x.global[le32(r, 44)]
	m.op = x.global[le32(r, 48)]
	if p := le32(r, 52); p != 0 {
		m.peer = x.global[p-1] + 1
	}
	m.kind = spans.Kind(r[56])
	m.status = spans.StatusCode(r[57])
	return m
}

func (x *segIndex) rowStart(i int) int64 { return int64(le64(x.rows, i*rowSize+16)) }
func (x *segIndex) rowRec(i int) int     { return int(le32(x.rows, i*rowSize+32)) }
func (x *segIndex) rowTrace(i int) []byte {
	return x.rows[i*rowSize : i*rowSize+16]
}

// firstAtOrBefore is the first row whose start is ≤ t (rows are sorted by
// start descending).
func (x *segIndex) firstAtOrBefore(t int64) int {
	lo, hi := 0, x.nRows
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x.rowStart(mid) > t {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// traceRows returns the rows of one trace (ascending).
func (x *segIndex) traceRows(id spans.TraceID) []uint32 {
	if !bloomWordsMayContain(x.tbloom, traceHash(id)) {
		return nil
	}
	n := x.nRows
	lo := sortSearch(n, func(i int) bool { return bytes.Compare(x.rowTrace(int(le32(x.byTrace, i*4))), id[:]) >= 0 })
	var out []uint32
	for i := lo; i < n; i++ {
		r := le32(x.byTrace, i*4)
		if !bytes.Equal(x.rowTrace(int(r)), id[:]) {
			break
		}
		out = append(out, r)
	}
	return out
}

func sortSearch(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !f(mid) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// postingList returns the rows of one posting list (nil when absent).
func (x *segIndex) postingList(key uint8, a, b uint32) []byte {
	i := sortSearch(len(x.posts), func(i int) bool {
		p := &x.posts[i]
		if p.key != key {
			return p.key > key
		}
		if p.a != a {
			return p.a > a
		}
		return p.b >= b
	})
	if i == len(x.posts) || x.posts[i].key != key || x.posts[i].a != a || x.posts[i].b != b {
		return nil
	}
	p := &x.posts[i]
	return x.postings[int(p.first)*4 : int(p.first+p.count)*4]
}

// recMayHaveAll says whether record rec's attribute filter may hold every
// hash.
func (x *segIndex) recMayHaveAll(rec int, hashes []uint64) bool {
	w, n := int(le32(x.recs, rec*recEntrySize+8)), int(le32(x.recs, rec*recEntrySize+12))
	words := x.blooms[w*8 : (w+n)*8]
	for _, h := range hashes {
		if !bloomWordsMayContain(words, h) {
			return false
		}
	}
	return true
}

func (x *segIndex) nRecs() int { return len(x.recs) / recEntrySize }

// close releases the file mapping.
func (x *segIndex) close() error {
	if x.unmap != nil {
		return x.unmap()
	}
	return nil
}

// errIndex marks a damaged or foreign index file.
var errIndex = errors.New("bad index file")

func idxErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errIndex, fmt.Sprintf(format, a...))
}

// decodeIndex checks and decodes an index file held in data (which it keeps
// referencing). segSize is the size of the segment file it must describe
// (-1 to skip that check). Every offset and id in the file is checked, so
// a damaged file is an error, never a crash or a wrong read.
func decodeIndex(data []byte, segSize int64) (*segIndex, error) {
	if len(data) < idxHeader+nSections*16+4 {
		return nil, idxErr("%d bytes, shorter than the header", len(data))
	}
	if string(data[:8]) != idxMagic {
		return nil, idxErr("magic %q", data[:8])
	}
	body := data[:len(data)-4]
	if got, want := crc32.Checksum(body, castagnoli), le32(data, len(data)-4); got != want {
		return nil, idxErr("checksum %08x, stored %08x", got, want)
	}
	if v := le32(data, 8); v != idxVersion {
		return nil, idxErr("version %d, this build reads %d", v, idxVersion)
	}
	x := &segIndex{
		data: data, nRows: int(le32(data, 12)), segSize: int64(le64(data, 16)),
		minStart: int64(le64(data, 24)), maxStart: int64(le64(data, 32)), segCRC: le32(data, 40),
	}
	if segSize >= 0 && x.segSize != segSize {
		return nil, idxErr("describes %d bytes of segment, the segment has %d", x.segSize, segSize)
	}
	var sec [nSections][]byte
	for i := range sec {
		off, n := le64(data, idxHeader+i*16), le64(data, idxHeader+i*16+8)
		if off < idxHeader+nSections*16 || off > uint64(len(body)) || n > uint64(len(body))-off {
			return nil, idxErr("section %d at %d+%d outside the file", i, off, n)
		}
		sec[i] = body[off : off+n]
	}
	if err := x.decodeSmall(sec); err != nil {
		return nil, err
	}
	if err := x.checkTables(sec); err != nil {
		return nil, err
	}
	return x, nil
}

// decodeSmall decodes the sections kept in memory.
func (x *segIndex) decodeSmall(sec [nSections][]byte) error {
	d := decoder{b: sec[secNames]}
	for len(d.b) > 0 && d.err == nil {
		x.names = append(x.names, d.str())
	}
	if d.err != nil {
		return idxErr("names: %v", d.err)
	}
	nn := uint32(len(x.names))
	b := sec[secOps]
	if len(b)%opEntrySize != 0 {
		return idxErr("operations section of %d bytes", len(b))
	}
	for i := 0; i < len(b); i += opEntrySize {
		e := opEntry{le32(b, i), le32(b, i+4), spans.Kind(b[i+8])}
		if e.svc >= nn || e.op >= nn {
			return idxErr("operation entry %d names id %d/%d of %d", i/opEntrySize, e.svc, e.op, nn)
		}
		x.ops = append(x.ops, e)
	}
	b = sec[secPeers]
	if len(b)%peerSize != 0 {
		return idxErr("peers section of %d bytes", len(b))
	}
	for i := 0; i < len(b); i += peerSize {
		p := [2]uint32{le32(b, i), le32(b, i+4)}
		if p[0] >= nn || p[1] >= nn {
			return idxErr("peer entry %d names id %d/%d of %d", i/peerSize, p[0], p[1], nn)
		}
		x.peers = append(x.peers, p)
	}
	d = decoder{b: sec[secDamage]}
	n := d.count(3)
	for range n {
		r := damagedRange{off: int64(d.uvarint()), n: int64(d.uvarint()), why: d.str()}
		if d.err == nil && (r.off < 0 || r.n < 0) {
			d.fail(errors.New("negative range"))
		}
		x.damaged = append(x.damaged, r)
	}
	if d.err != nil || len(d.b) != 0 {
		return idxErr("damage section: %v", cmp.Or(d.err, errors.New("trailing bytes")))
	}
	b = sec[secPostDir]
	if len(b)%postDirSize != 0 {
		return idxErr("posting directory of %d bytes", len(b))
	}
	var first uint64
	nPost := uint64(len(sec[secPostings]) / 4)
	for i := 0; i < len(b); i += postDirSize {
		p := postList{key: b[i], a: le32(b, i+4), b: le32(b, i+8), first: uint32(first), count: le32(b, i+12)}
		if p.key < postService || p.key > postPeer || p.a >= nn || p.key == postOperation && p.b >= nn {
			return idxErr("posting list %d: key %d (%d, %d)", i/postDirSize, p.key, p.a, p.b)
		}
		if k := len(x.posts); k > 0 {
			q := x.posts[k-1]
			if cmp.Or(cmp.Compare(q.key, p.key), cmp.Compare(q.a, p.a), cmp.Compare(q.b, p.b)) >= 0 {
				return idxErr("posting list %d out of order", i/postDirSize)
			}
		}
		first += uint64(p.count)
		if first > nPost {
			return idxErr("posting lists hold more than the %d entries stored", nPost)
		}
		x.posts = append(x.posts, p)
	}
	if first != nPost || len(sec[secPostings])%4 != 0 {
		return idxErr("posting lists hold %d entries, %d bytes stored", first, len(sec[secPostings]))
	}
	return nil
}

// checkTables checks the mapped tables: sizes, ids, offsets and orders.
func (x *segIndex) checkTables(sec [nSections][]byte) error {
	x.recs, x.blooms, x.rows = sec[secRecs], sec[secBlooms], sec[secRows]
	x.byTrace, x.postings, x.tbloom = sec[secByTrace], sec[secPostings], sec[secTraceBloom]
	if err := x.checkTags(sec[secTagDir], sec[secTagPostings]); err != nil {
		return err
	}
	if len(x.recs)%recEntrySize != 0 || len(x.blooms)%8 != 0 || len(x.tbloom)%8 != 0 || len(x.tbloom) == 0 {
		return idxErr("record table, Bloom filters or trace filter of odd size")
	}
	if len(x.rows) != x.nRows*rowSize || len(x.byTrace) != x.nRows*4 {
		return idxErr("%d rows but %d row bytes and %d trace-table bytes", x.nRows, len(x.rows), len(x.byTrace))
	}
	words := uint64(len(x.blooms) / 8)
	for i := range x.nRecs() {
		off, n := uint64(le32(x.recs, i*recEntrySize)), uint64(le32(x.recs, i*recEntrySize+4))
		w, k := uint64(le32(x.recs, i*recEntrySize+8)), uint64(le32(x.recs, i*recEntrySize+12))
		if off+n > uint64(x.segSize) || w+k > words || k == 0 {
			return idxErr("record %d at %d+%d (filter %d+%d) outside the segment or filters", i, off, n, w, k)
		}
	}
	nn, nr := uint32(len(x.names)), uint32(x.nRecs())
	for i := range x.nRows {
		r := x.rows[i*rowSize:]
		if le32(r, 32) >= nr || le32(r, 44) >= nn || le32(r, 48) >= nn || le32(r, 52) > nn {
			return idxErr("row %d: record or name id out of range", i)
		}
		if i > 0 && x.rowStart(i) > x.rowStart(i-1) {
			return idxErr("row %d out of start-time order", i)
		}
	}
	nrows := uint32(x.nRows)
	for i := range x.nRows {
		r := le32(x.byTrace, i*4)
		if r >= nrows {
			return idxErr("trace table entry %d: row %d of %d", i, r, nrows)
		}
		if i > 0 && bytes.Compare(x.rowTrace(int(le32(x.byTrace, i*4-4))), x.rowTrace(int(r))) > 0 {
			return idxErr("trace table entry %d out of order", i)
		}
	}
	for _, p := range x.posts {
		for j := range p.count {
			r := le32(x.postings, int(p.first+j)*4)
			if r >= nrows || j > 0 && r <= le32(x.postings, int(p.first+j-1)*4) {
				return idxErr("posting list (%d, %d, %d) entry %d: row %d", p.key, p.a, p.b, j, r)
			}
		}
	}
	return nil
}

// buildIndex encodes the index of a sealed segment from its in-memory
// index. name maps an interned id to its text.
func buildIndex(seg *segment, segCRC uint32, th *rowTagHashes, name func(uint32) string) []byte {
	metas := seg.metas
	// Local names: the segment's service, operation and peer names.
	local := map[uint32]uint32{}
	var names []string
	loc := func(g uint32) uint32 {
		if l, ok := local[g]; ok {
			return l
		}
		l := uint32(len(names))
		local[g] = l
		names = append(names, name(g))
		return l
	}
	// Records in file order (rows are appended in file order), each with
	// its attribute filter; a record whose spans have no attribute has an
	// empty filter.
	blooms := make(map[uint32]*attrBloom, len(seg.recs))
	for _, r := range seg.recs {
		blooms[r.off] = r.bloom
	}
	type recEnt struct {
		off, n uint32
		bloom  []uint64
	}
	var recs []recEnt
	recOf := make([]uint32, len(metas)) // record index of each row
	for j := range metas {
		if len(recs) == 0 || recs[len(recs)-1].off != metas[j].rec {
			bits := []uint64{0}
			if b := blooms[metas[j].rec]; b != nil {
				bits = b.bits
			}
			recs = append(recs, recEnt{metas[j].rec, metas[j].recLen, bits})
		}
		recOf[j] = uint32(len(recs) - 1)
	}
	order := make([]uint32, len(metas))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int {
		ma, mb := &metas[a], &metas[b]
		return cmp.Or(cmp.Compare(mb.start, ma.start), bytes.Compare(ma.trace[:], mb.trace[:]), cmp.Compare(ma.rec, mb.rec), cmp.Compare(ma.off, mb.off))
	})
	ops := map[opEntry]struct{}{}
	peers := map[[2]uint32]struct{}{}
	type postKey struct {
		key  uint8
		a, b uint32
	}
	posts := map[postKey][]uint32{}
	rows := make([]byte, 0, len(metas)*rowSize)
	var minStart, maxStart int64
	for i, o := range order {
		m := &metas[o]
		if i == 0 || m.start < minStart {
			minStart = m.start
		}
		if i == 0 || m.start > maxStart {
			maxStart = m.start
		}
		svc, op := loc(m.svc), loc(m.op)
		var peer uint32
		if m.peer != 0 {
			peer = loc(m.peer-1) + 1
			peers[[2]uint32{peer - 1, op}] = struct{}{}
			k := postKey{postPeer, peer - 1, 0}
			posts[k] = append(posts[k], uint32(i))
		}
		ops[opEntry{svc, op, m.kind}] = struct{}{}
		k := postKey{postService, svc, 0}
		posts[k] = append(posts[k], uint32(i))
		k = postKey{postOperation, svc, op}
		posts[k] = append(posts[k], uint32(i))
		var r [rowSize]byte
		copy(r[:16], m.trace[:])
		binary.LittleEndian.PutUint64(r[16:], uint64(m.start))
		binary.LittleEndian.PutUint64(r[24:], uint64(m.dur))
		binary.LittleEndian.PutUint32(r[32:], recOf[o])
		binary.LittleEndian.PutUint32(r[36:], m.off)
		binary.LittleEndian.PutUint32(r[40:], m.length)
		binary.LittleEndian.PutUint32(r[44:], svc)
		binary.LittleEndian.PutUint32(r[48:], op)
		binary.LittleEndian.PutUint32(r[52:], peer)
		r[56], r[57] = byte(m.kind), byte(m.status)
		rows = append(rows, r[:]...)
	}
	var sec [nSections][]byte
	for _, n := range names {
		sec[secNames] = appendString(sec[secNames], n)
	}
	opList := slices.SortedFunc(mapKeys(ops), func(a, b opEntry) int {
		return cmp.Or(cmp.Compare(a.svc, b.svc), cmp.Compare(a.op, b.op), cmp.Compare(a.kind, b.kind))
	})
	for _, e := range opList {
		sec[secOps] = binary.LittleEndian.AppendUint32(sec[secOps], e.svc)
		sec[secOps] = binary.LittleEndian.AppendUint32(sec[secOps], e.op)
		sec[secOps] = append(sec[secOps], byte(e.kind), 0, 0, 0)
	}
	peerList := slices.SortedFunc(mapKeys(peers), func(a, b [2]uint32) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, p := range peerList {
		sec[secPeers] = binary.LittleEndian.AppendUint32(sec[secPeers], p[0])
		sec[secPeers] = binary.LittleEndian.AppendUint32(sec[secPeers], p[1])
	}
	var words uint32
	for _, r := range recs {
		n := uint32(len(r.bloom))
		sec[secRecs] = binary.LittleEndian.AppendUint32(sec[secRecs], r.off)
		sec[secRecs] = binary.LittleEndian.AppendUint32(sec[secRecs], r.n)
		sec[secRecs] = binary.LittleEndian.AppendUint32(sec[secRecs], words)
		sec[secRecs] = binary.LittleEndian.AppendUint32(sec[secRecs], n)
		for _, w := range r.bloom {
			sec[secBlooms] = binary.LittleEndian.AppendUint64(sec[secBlooms], w)
		}
		words += n
	}
	sec[secRows] = rows
	byTrace := make([]uint32, len(order))
	for i := range byTrace {
		byTrace[i] = uint32(i)
	}
	slices.SortFunc(byTrace, func(a, b uint32) int {
		return cmp.Or(bytes.Compare(rows[a*rowSize:a*rowSize+16], rows[b*rowSize:b*rowSize+16]), cmp.Compare(a, b))
	})
	sec[secByTrace] = make([]byte, 0, 4*len(byTrace))
	var thashes []uint64
	for i, r := range byTrace {
		sec[secByTrace] = binary.LittleEndian.AppendUint32(sec[secByTrace], r)
		if i == 0 || !bytes.Equal(rows[r*rowSize:r*rowSize+16], rows[byTrace[i-1]*rowSize:byTrace[i-1]*rowSize+16]) {
			thashes = append(thashes, xxhash.Sum64(rows[r*rowSize:r*rowSize+16]))
		}
	}
	for _, k := range slices.SortedFunc(mapKeys(posts), func(a, b postKey) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.a, b.a), cmp.Compare(a.b, b.b))
	}) {
		l := posts[k]
		sec[secPostDir] = append(sec[secPostDir], k.key, 0, 0, 0)
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], k.a)
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], k.b)
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], uint32(len(l)))
		for _, r := range l {
			sec[secPostings] = binary.LittleEndian.AppendUint32(sec[secPostings], r)
		}
	}
	sec[secDamage] = binary.AppendUvarint(nil, uint64(len(seg.damaged)))
	for _, d := range seg.damaged {
		sec[secDamage] = binary.AppendUvarint(sec[secDamage], uint64(d.off))
		sec[secDamage] = binary.AppendUvarint(sec[secDamage], uint64(d.n))
		sec[secDamage] = appendString(sec[secDamage], d.why)
	}
	for _, w := range newAttrBloom(thashes).bits {
		sec[secTraceBloom] = binary.LittleEndian.AppendUint64(sec[secTraceBloom], w)
	}
	appendTagSections(&sec, order, th)

	out := make([]byte, idxHeader+nSections*16, idxHeader+nSections*16+len(rows)*2)
	copy(out, idxMagic)
	binary.LittleEndian.PutUint32(out[8:], idxVersion)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(metas)))
	binary.LittleEndian.PutUint64(out[16:], uint64(seg.size))
	binary.LittleEndian.PutUint64(out[24:], uint64(minStart))
	binary.LittleEndian.PutUint64(out[32:], uint64(maxStart))
	binary.LittleEndian.PutUint32(out[40:], segCRC)
	for i, b := range sec {
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
		binary.LittleEndian.PutUint64(out[idxHeader+i*16:], uint64(len(out)))
		binary.LittleEndian.PutUint64(out[idxHeader+i*16+8:], uint64(len(b)))
		out = append(out, b...)
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// writeIndexFile writes data to path durably: a temporary file, fsync,
// rename, directory fsync.
func writeIndexFile(dir, path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// openIndexFile maps and checks an index file.
func openIndexFile(path string, segSize int64) (*segIndex, int64, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, 0, err
	}
	x, err := decodeIndex(data, segSize)
	if err != nil {
		unmap()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	x.unmap = unmap
	dropResident(data)
	return x, int64(len(data)), nil
}

// isIndexTemp says whether a directory entry is a leftover temporary index.
func isIndexTemp(name string) bool {
	return strings.HasPrefix(name, segPrefix) && strings.HasSuffix(name, idxSuffix+".tmp")
}

// fileCRC is the CRC-32C of the first size bytes of f.
func fileCRC(f io.ReaderAt, size int64) (uint32, error) {
	buf := make([]byte, 1<<20)
	var sum uint32
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		sum = crc32.Update(sum, castagnoli, buf[:n])
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			return 0, fmt.Errorf("checksum segment: %w", err)
		}
	}
	return sum, nil
}

// Tag postings: every attribute pair of a row (hash as attrHash) falls in
// one of a power-of-two number of buckets (hash & (buckets-1)); each bucket
// lists the rows holding a pair of it. High-cardinality values share
// buckets, so a hit is confirmed by decoding the span.

// tagBuckets is the bucket count for a segment of n rows: about one per two
// rows (a unique value per span then shares its bucket with a few others).
func tagBuckets(n int) int {
	b := 1024
	for b < n/2 && b < 1<<22 {
		b *= 2
	}
	return b
}

// tagList returns the rows that may hold the pair with hash h.
func (x *segIndex) tagList(h uint64) []byte {
	b := int(h & uint64(len(x.tagDir)/4-2))
	return x.tagPosts[le32(x.tagDir, b*4)*4 : le32(x.tagDir, b*4+4)*4]
}

func (x *segIndex) checkTags(dir, posts []byte) error {
	if len(dir) == 0 && len(posts) == 0 {
		return nil
	}
	nb := len(dir)/4 - 1
	if len(dir)%4 != 0 || nb < 1 || nb&(nb-1) != 0 || len(posts)%4 != 0 {
		return idxErr("tag directory of %d bytes, postings of %d", len(dir), len(posts))
	}
	if le32(dir, 0) != 0 || int(le32(dir, nb*4)) != len(posts)/4 {
		return idxErr("tag directory does not cover the %d postings", len(posts)/4)
	}
	for b := range nb {
		lo, hi := le32(dir, b*4), le32(dir, b*4+4)
		if hi < lo || int(hi) > len(posts)/4 {
			return idxErr("tag bucket %d at %d..%d", b, lo, hi)
		}
		for j := lo; j < hi; j++ {
			r := le32(posts, int(j)*4)
			if int(r) >= x.nRows || j > lo && r <= le32(posts, int(j-1)*4) {
				return idxErr("tag bucket %d entry %d: row %d", b, j-lo, r)
			}
		}
	}
	x.tagDir, x.tagPosts = dir, posts
	return nil
}

// rowTagHashes holds the attribute pair hashes of each row of a segment in
// file order (the order of segment.metas).
type rowTagHashes struct {
	start  []uint32 // row i's hashes are hashes[start[i]:start[i+1]]
	hashes []uint64
}

// appendTagSections encodes the tag postings of rows in index order
// (order[i] is the file-order row of index row i).
func appendTagSections(sec *[nSections][]byte, order []uint32, th *rowTagHashes) {
	if th == nil {
		return
	}
	nb := tagBuckets(len(order))
	counts := make([]uint32, nb+1)
	var seen []uint32
	rowBuckets := func(o uint32, fn func(b uint32)) {
		seen = seen[:0]
		for _, h := range th.hashes[th.start[o]:th.start[o+1]] {
			b := uint32(h & uint64(nb-1))
			if !slices.Contains(seen, b) {
				seen = append(seen, b)
				fn(b)
			}
		}
	}
	for _, o := range order {
		rowBuckets(o, func(b uint32) { counts[b+1]++ })
	}
	for b := 1; b <= nb; b++ {
		counts[b] += counts[b-1]
	}
	dir := make([]byte, 0, 4*(nb+1))
	for _, c := range counts {
		dir = binary.LittleEndian.AppendUint32(dir, c)
	}
	posts := make([]byte, 4*counts[nb])
	next := counts[:nb]
	for i, o := range order {
		rowBuckets(o, func(b uint32) {
			binary.LittleEndian.PutUint32(posts[next[b]*4:], uint32(i))
			next[b]++
		})
	}
	sec[secTagDir], sec[secTagPostings] = dir, posts
}
