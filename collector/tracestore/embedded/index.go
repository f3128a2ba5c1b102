package embedded

import (
	"bufio"
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

	"github.com/klauspost/compress/zstd"

	"github.com/meshscope/meshscope/collector/spans"
)

// A sealed segment's index lives next to it in seg-<id>.idx, written once
// when the segment is sealed (see docs/format/traces.md, "Index file"):
//
//	file    = header(64) directory(nSections × 16) section* crc:uint32le
//	header  = magic "MSTIDX1\n" version:u32 nRows:u32 segSize:u64
//	          minStart:i64 maxStart:i64 segCRC:u32 nTraces:u32 reserved(16)
//	section = at 8-aligned offsets; the directory holds (offset, length) of each
//
// crc is CRC-32C of every byte before it. All integers little-endian. The
// file is read with pread: the small sections are decoded into memory at
// open, the blocks of the others through the store's index cache.
const (
	idxMagic      = "MSTIDX1\n"
	idxVersion    = 3
	idxSuffix     = ".idx"
	idxHeader     = 64
	opEntrySize   = 12
	peerSize      = 8
	rowsPerBlock  = 256 // rows per row block
	idsPerChunk   = 256 // trace ids per chunk of the trace id table
	tracesPerBlk  = 64  // traces per block of the trace row lists
	rowBlkSize    = 20  // firstStart:i64 off:u64 len:u32
	postDirSize   = 24  // key:u8 pad:3 a:u32 b:u32 count:u32 off:u32 len:u32
	denseMinRows  = 64  // an attribute pair in more rows (and > 1/64 of them) gets no posting list
	denseFraction = 64
)

// Sections, in file order.
const (
	secNames       = iota // (len:uvarint bytes)*: the segment's service and operation names
	secOps                // (svc:u32 op:u32 kind:u8 pad:3)*: sorted
	secPeers              // (peer:u32 op:u32)*: sorted
	secDamage             // count:uvarint (off:uvarint n:uvarint why:str)*
	secRecs               // (off:uvarint len:uvarint)*: records in file order
	secRowDir             // (firstStart:i64 off:u64 len:u32)* one per row block
	secRows               // row blocks (see rowBlock)
	secTraceIDs           // 16-byte trace ids, sorted, unique
	secTraceDir           // u32 × (trace blocks + 1): offsets of the trace row blocks in secTraceRows
	secTraceRows          // trace row blocks: per trace of the block, its rows
	secPostDir            // (key:u8 pad:3 a:u32 b:u32 count:u32 off:u32 len:u32)*: sorted by (key, a, b)
	secPostings           // posting lists (see decodeRowList)
	secTagDir             // u32 × (buckets+1): offset of each attribute bucket's list in secTagPostings
	secTagPostings        // bucket lists: rows grouped by attribute pair, with fingerprints (see tagBucket)
	secDense              // u64 hashes, sorted: attribute pairs too common for a posting list
	nSections
)

// Posting list keys.
const (
	postService   = 1 // a = service
	postOperation = 2 // a = service, b = operation
	postPeer      = 3 // a = peer service of CLIENT spans
)

// Block kinds in the index cache.
const (
	kindRows = iota + 1
	kindTraceIDs
	kindTraceRows
	kindPosting
	kindTag
)

const (
	maxDurScale = 18
	maxInt64    = 1<<63 - 1
)

// pow10 is 10^k (k ≤ maxDurScale).
func pow10(k int) int64 {
	p := int64(1)
	for range k {
		p *= 10
	}
	return p
}

func idxName(id uint32) string { return fmt.Sprintf("%s%010d%s", segPrefix, id, idxSuffix) }

// postList locates one posting list in the postings section.
type postList struct {
	key      uint8
	a, b     uint32
	count    uint32
	off, len uint32
}

type rowBlockRef struct {
	first    int64 // start of the block's first row
	off      uint64
	len      uint32
	firstRow int
}

type recRef struct{ off, len uint32 }

type fileSection struct{ off, len uint64 }

// segIndex is an opened index file. Only small tables stay on the heap
// (names, operation and peer sets, records, one entry per row block, one
// trace id per idsPerChunk traces, one offset per trace block, the posting
// directory and the common attribute pairs: a few bytes per hundred rows);
// blocks are read with pread and decoded through the index cache.
type segIndex struct {
	f        io.ReaderAt
	closer   io.Closer
	cache    *indexCache
	file     uint64 // number in cache
	dec      *zstd.Decoder
	sec      [nSections]fileSection
	nRows    int
	nTraces  int
	segSize  int64
	segCRC   uint32 // CRC-32C of the segment file's segSize bytes
	minStart int64
	maxStart int64
	names    []string
	ops      []opEntry
	peers    [][2]uint32
	recs     []recRef
	blocks   []rowBlockRef
	idSample []spans.TraceID // first id of each chunk of the trace id table
	traceDir []uint32
	posts    []postList
	damaged  []damagedRange
	nBuckets int // attribute buckets; 0 = no attribute postings
	dense    []uint64

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

// errIndex marks a damaged or foreign index file.
var errIndex = errors.New("bad index file")

func idxErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errIndex, fmt.Sprintf(format, a...))
}

// read reads n bytes at off of section s.
func (x *segIndex) read(s int, off, n uint64) ([]byte, error) {
	if off > x.sec[s].len || n > x.sec[s].len-off {
		return nil, idxErr("section %d: %d+%d outside its %d bytes", s, off, n, x.sec[s].len)
	}
	b := make([]byte, n)
	if _, err := x.f.ReadAt(b, int64(x.sec[s].off+off)); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return b, nil
}

// cached returns the decoded block (kind, n), decoding it with fn on a miss.
func cached[T sized](x *segIndex, kind uint8, n uint32, fn func() (T, error)) (T, error) {
	k := blockKey{x.file, kind, n}
	if x.cache != nil {
		if v, ok := x.cache.get(k); ok {
			return v.(T), nil
		}
	}
	v, err := fn()
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%w (block %d/%d)", err, kind, n)
	}
	if x.cache != nil {
		x.cache.put(k, v)
	}
	return v, nil
}

// A row block, before compression, is column after column for its n rows:
//
//	trace ordinal:uvarint × n   (index in the trace id table)
//	start: first:varint, then (previous − start):uvarint × (n−1)
//	dur:varint × n
//	record: (record − previous record, from 0):varint × n
//	off:uvarint × n, len:uvarint × n
//	svc:uvarint × n, op:uvarint × n, peer:uvarint × n (id+1, 0 = none)
//	kind:u8 × n, status:u8 × n
//
// (dur is stored as scale:u8, then dur / 10^scale; off, for a row in the
// same record as the previous row, as (off − previous off):varint)
// stored as crc:u32 (CRC-32C of what follows) codec:u8 body (codec 0: the
// columns; 1: zstd of them).
type rowBlock struct {
	trace            []uint32
	start, dur       []int64
	rec, off, length []uint32
	svc, op, peer    []uint32
	kind, status     []uint8
}

func (b *rowBlock) bytes() int64 { return int64(len(b.trace)) * 46 }

func appendRowBlock(dst []byte, rows []idxRow) []byte {
	for _, r := range rows {
		dst = binary.AppendUvarint(dst, uint64(r.trace))
	}
	for i, r := range rows {
		if i == 0 {
			dst = binary.AppendVarint(dst, r.start)
		} else {
			dst = binary.AppendUvarint(dst, uint64(rows[i-1].start-r.start))
		}
	}
	k := 0 // durations are multiples of 10^k (SDKs often record µs or ms)
	for p := int64(10); k < maxDurScale && slices.IndexFunc(rows, func(r idxRow) bool { return r.dur%p != 0 }) < 0; p *= 10 {
		k++
	}
	dst = append(dst, byte(k))
	for _, r := range rows {
		dst = binary.AppendVarint(dst, r.dur/pow10(k))
	}
	prev := int64(0)
	for _, r := range rows {
		dst = binary.AppendVarint(dst, int64(r.rec)-prev)
		prev = int64(r.rec)
	}
	for i, r := range rows {
		if i > 0 && r.rec == rows[i-1].rec {
			dst = binary.AppendVarint(dst, int64(r.off)-int64(rows[i-1].off))
		} else {
			dst = binary.AppendUvarint(dst, uint64(r.off))
		}
	}
	for _, col := range []func(r *idxRow) uint32{
		func(r *idxRow) uint32 { return r.length },
		func(r *idxRow) uint32 { return r.svc }, func(r *idxRow) uint32 { return r.op }, func(r *idxRow) uint32 { return r.peer },
	} {
		for i := range rows {
			dst = binary.AppendUvarint(dst, uint64(col(&rows[i])))
		}
	}
	for _, r := range rows {
		dst = append(dst, byte(r.kind))
	}
	for _, r := range rows {
		dst = append(dst, byte(r.status))
	}
	return dst
}

// sealBlock frames a block: checksum, codec, body (compressed when that is
// smaller).
func sealBlock(enc *zstd.Encoder, raw []byte) []byte {
	body, codec := raw, byte(codecRaw)
	if enc != nil {
		if z := enc.EncodeAll(raw, nil); len(z) < len(raw) {
			body, codec = z, codecZstd
		}
	}
	out := make([]byte, 5, 5+len(body))
	out[4] = codec
	out = append(out, body...)
	binary.LittleEndian.PutUint32(out, crc32.Checksum(out[4:], castagnoli))
	return out
}

// appendSealedBlock appends raw framed as sealBlock does to dst, with z as
// the compression buffer (returned for reuse): sealing a segment's many
// blocks allocates no buffer per block.
func appendSealedBlock(dst []byte, enc *zstd.Encoder, raw, z []byte) ([]byte, []byte) {
	body, codec := raw, byte(codecRaw)
	if enc != nil {
		if z = enc.EncodeAll(raw, z[:0]); len(z) < len(raw) {
			body, codec = z, codecZstd
		}
	}
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0, codec)
	dst = append(dst, body...)
	binary.LittleEndian.PutUint32(dst[at:], crc32.Checksum(dst[at+4:], castagnoli))
	return dst, z
}

// readBlock reads the block at off+n of section s, checks its checksum and
// returns its body, decompressed.
func (x *segIndex) readBlock(s int, off, n uint64) ([]byte, error) {
	b, err := x.read(s, off, n)
	if err != nil {
		return nil, err
	}
	if len(b) < 5 || crc32.Checksum(b[4:], castagnoli) != le32(b, 0) {
		return nil, idxErr("block checksum mismatch")
	}
	switch b[4] {
	case codecRaw:
		return b[5:], nil
	case codecZstd:
		if x.dec == nil {
			return nil, idxErr("compressed block and no decoder")
		}
		raw, err := x.dec.DecodeAll(b[5:], nil)
		if err != nil {
			return nil, idxErr("block: %v", err)
		}
		return raw, nil
	}
	return nil, idxErr("block codec %d", b[4])
}

func (x *segIndex) rowBlock(bn int) (*rowBlock, error) {
	return cached(x, kindRows, uint32(bn), func() (*rowBlock, error) {
		ref := &x.blocks[bn]
		raw, err := x.readBlock(secRows, ref.off, uint64(ref.len))
		if err != nil {
			return nil, err
		}
		n := min(rowsPerBlock, x.nRows-ref.firstRow)
		d := decoder{b: raw}
		rb := &rowBlock{trace: make([]uint32, n), start: make([]int64, n), dur: make([]int64, n),
			rec: make([]uint32, n), off: make([]uint32, n), length: make([]uint32, n),
			svc: make([]uint32, n), op: make([]uint32, n), peer: make([]uint32, n)}
		u32 := func(limit uint64) uint32 {
			v := d.uvarint()
			if v >= limit && d.err == nil {
				d.fail(fmt.Errorf("value %d ≥ %d", v, limit))
			}
			return uint32(v)
		}
		for i := range n {
			rb.trace[i] = u32(uint64(x.nTraces))
		}
		for i := range n {
			if i == 0 {
				rb.start[0] = d.varint()
			} else {
				delta := d.uvarint()
				rb.start[i] = rb.start[i-1] - int64(delta)
				if delta > 1<<62 || rb.start[i] > rb.start[i-1] {
					d.fail(errors.New("start out of order"))
				}
			}
		}
		k := int(d.u8())
		if k > maxDurScale && d.err == nil {
			d.fail(fmt.Errorf("duration scale %d", k))
		}
		scale := pow10(min(k, maxDurScale))
		for i := range n {
			v := d.varint()
			if scale > 1 && (v > maxInt64/scale || v < -maxInt64/scale) && d.err == nil {
				d.fail(fmt.Errorf("duration %d × 10^%d", v, k))
			}
			rb.dur[i] = v * scale
		}
		prev := int64(0)
		for i := range n {
			prev += d.varint()
			if (prev < 0 || prev >= int64(len(x.recs))) && d.err == nil {
				d.fail(fmt.Errorf("record %d of %d", prev, len(x.recs)))
			}
			rb.rec[i] = uint32(prev)
		}
		nn := uint64(len(x.names))
		for i := range n {
			if i > 0 && rb.rec[i] == rb.rec[i-1] {
				v := int64(rb.off[i-1]) + d.varint()
				if (v < 0 || v >= 1<<32) && d.err == nil {
					d.fail(fmt.Errorf("span offset %d", v))
				}
				rb.off[i] = uint32(v)
			} else {
				rb.off[i] = u32(1 << 32)
			}
		}
		for i := range n {
			rb.length[i] = u32(1 << 32)
		}
		for _, col := range [][]uint32{rb.svc, rb.op} {
			for i := range n {
				col[i] = u32(nn)
			}
		}
		for i := range n {
			rb.peer[i] = u32(nn + 1)
		}
		rb.kind, rb.status = d.bytes(n), d.bytes(n)
		if d.err != nil || len(d.b) != 0 {
			return nil, idxErr("row block %d: %v", bn, cmp.Or(d.err, errors.New("trailing bytes")))
		}
		if rb.start[0] != ref.first || bn+1 < len(x.blocks) && rb.start[n-1] < x.blocks[bn+1].first {
			return nil, idxErr("row block %d: starts disagree with the block table", bn)
		}
		return rb, nil
	})
}

// row returns the block holding row i and i's place in it.
func (x *segIndex) row(i int) (*rowBlock, int, error) {
	if i < 0 || i >= x.nRows {
		return nil, 0, idxErr("row %d of %d", i, x.nRows)
	}
	b, err := x.rowBlock(i / rowsPerBlock)
	return b, i % rowsPerBlock, err
}

// rowMeta decodes row i with global name ids.
func (x *segIndex) rowMeta(i int) (spanMeta, error) {
	var m spanMeta
	b, j, err := x.row(i)
	if err != nil {
		return m, err
	}
	if m.trace, err = x.traceID(int(b.trace[j])); err != nil {
		return m, err
	}
	rec := x.recs[b.rec[j]]
	m.rec, m.recLen = rec.off, rec.len
	m.start, m.dur = b.start[j], b.dur[j]
	m.off, m.length = b.off[j], b.length[j]
	m.svc, m.op = x.global[b.svc[j]], x.global[b.op[j]]
	if p := b.peer[j]; p != 0 {
		m.peer = x.global[p-1] + 1
	}
	m.kind, m.status = spans.Kind(b.kind[j]), spans.StatusCode(b.status[j])
	return m, nil
}

// rowKey returns row i's start and trace ordinal (its rank by trace id).
func (x *segIndex) rowKey(i int) (int64, uint32, error) {
	b, j, err := x.row(i)
	if err != nil {
		return 0, 0, err
	}
	return b.start[j], b.trace[j], nil
}

// firstAtOrBefore is the first row whose start is ≤ t (rows are sorted by
// start descending).
func (x *segIndex) firstAtOrBefore(t int64) (int, error) {
	bn := sortSearch(len(x.blocks), func(i int) bool { return x.blocks[i].first <= t })
	if bn == 0 {
		return 0, nil
	}
	b, err := x.rowBlock(bn - 1)
	if err != nil {
		return 0, err
	}
	return x.blocks[bn-1].firstRow + sortSearch(len(b.start), func(i int) bool { return b.start[i] <= t }), nil
}

type traceIDChunk []spans.TraceID

func (c traceIDChunk) bytes() int64 { return int64(len(c)) * 16 }

func (x *segIndex) traceIDs(cn int) (traceIDChunk, error) {
	return cached(x, kindTraceIDs, uint32(cn), func() (traceIDChunk, error) {
		n := min(idsPerChunk, x.nTraces-cn*idsPerChunk)
		b, err := x.read(secTraceIDs, uint64(cn*idsPerChunk*16), uint64(n*16))
		if err != nil {
			return nil, err
		}
		c := make(traceIDChunk, n)
		for i := range c {
			copy(c[i][:], b[i*16:])
			if i > 0 && bytes.Compare(c[i-1][:], c[i][:]) >= 0 {
				return nil, idxErr("trace ids out of order")
			}
		}
		if c[0] != x.idSample[cn] {
			return nil, idxErr("trace id chunk %d disagrees with its sample", cn)
		}
		return c, nil
	})
}

// traceID is the id of trace ordinal o.
func (x *segIndex) traceID(o int) (spans.TraceID, error) {
	c, err := x.traceIDs(o / idsPerChunk)
	if err != nil {
		return spans.TraceID{}, err
	}
	return c[o%idsPerChunk], nil
}

type traceRowBlock [][]uint32

func (b traceRowBlock) bytes() int64 {
	n := int64(len(b)) * 24
	for _, r := range b {
		n += int64(len(r)) * 4
	}
	return n
}

// A trace row block lists, for each trace of the block in id order,
// count:uvarint first:uvarint (row − previous row − 1):uvarint × (count−1),
// framed as a row block is.
func (x *segIndex) traceRowBlock(bn int) (traceRowBlock, error) {
	return cached(x, kindTraceRows, uint32(bn), func() (traceRowBlock, error) {
		lo, hi := x.traceDir[bn], x.traceDir[bn+1]
		raw, err := x.readBlock(secTraceRows, uint64(lo), uint64(hi-lo))
		if err != nil {
			return nil, err
		}
		d := decoder{b: raw}
		n := min(tracesPerBlk, x.nTraces-bn*tracesPerBlk)
		out := make(traceRowBlock, n)
		for i := range out {
			c := d.count(1)
			if c == 0 && d.err == nil {
				d.fail(errors.New("trace without rows"))
			}
			out[i] = decodeDeltas(&d, c, x.nRows)
		}
		if d.err != nil || len(d.b) != 0 {
			return nil, idxErr("trace row block %d: %v", bn, cmp.Or(d.err, errors.New("trailing bytes")))
		}
		return out, nil
	})
}

// decodeDeltas reads n ascending row numbers below rows coded as first,
// then gap − 1.
func decodeDeltas(d *decoder, n, rows int) []uint32 {
	out := make([]uint32, 0, n)
	next := uint64(0)
	for range n {
		v := next + d.uvarint()
		if d.err != nil {
			return nil
		}
		if v >= uint64(rows) {
			d.fail(fmt.Errorf("row %d of %d", v, rows))
			return nil
		}
		out = append(out, uint32(v))
		next = v + 1
	}
	return out
}

func appendDeltas(dst []byte, rows []uint32) []byte {
	next := uint32(0)
	for _, r := range rows {
		dst = binary.AppendUvarint(dst, uint64(r-next))
		next = r + 1
	}
	return dst
}

// traceRows returns the rows of one trace (ascending).
func (x *segIndex) traceRows(id spans.TraceID) ([]uint32, error) {
	cn := sortSearch(len(x.idSample), func(i int) bool { return bytes.Compare(x.idSample[i][:], id[:]) > 0 }) - 1
	if cn < 0 {
		return nil, nil
	}
	c, err := x.traceIDs(cn)
	if err != nil {
		return nil, err
	}
	i, ok := slices.BinarySearchFunc(c, id, func(a, b spans.TraceID) int { return bytes.Compare(a[:], b[:]) })
	if !ok {
		return nil, nil
	}
	o := cn*idsPerChunk + i
	b, err := x.traceRowBlock(o / tracesPerBlk)
	if err != nil {
		return nil, err
	}
	return b[o%tracesPerBlk], nil
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

type rowList []uint32

func (l rowList) bytes() int64 { return int64(len(l)) * 4 }

// postingList returns the rows of one posting list (nil when absent). A
// list is count rows coded as decodeDeltas reads them, framed as a row
// block is.
func (x *segIndex) postingList(key uint8, a, b uint32) ([]uint32, error) {
	i := sortSearch(len(x.posts), func(i int) bool {
		p := &x.posts[i]
		return cmp.Or(cmp.Compare(p.key, key), cmp.Compare(p.a, a), cmp.Compare(p.b, b)) >= 0
	})
	if i == len(x.posts) || x.posts[i].key != key || x.posts[i].a != a || x.posts[i].b != b {
		return nil, nil
	}
	l, err := cached(x, kindPosting, uint32(i), func() (rowList, error) {
		p := &x.posts[i]
		raw, err := x.readBlock(secPostings, uint64(p.off), uint64(p.len))
		if err != nil {
			return nil, err
		}
		d := decoder{b: raw}
		l := decodeDeltas(&d, int(p.count), x.nRows)
		if d.err != nil || len(d.b) != 0 {
			return nil, idxErr("posting list %d: %v", i, cmp.Or(d.err, errors.New("trailing bytes")))
		}
		return l, nil
	})
	return l, err
}

// Attribute postings: every attribute pair of a row (hash as attrHash)
// falls in one of a power-of-two number of buckets (hash & (buckets-1));
// each bucket lists the rows holding a pair of it. A pair held by more than
// denseMinRows rows and 1/denseFraction of the segment's rows is "dense":
// it is left out of the buckets and its hash listed instead, and a search
// for it checks the spans themselves (such a pair matches many rows, so
// limit hits come quickly). High-cardinality values share buckets, so a
// hit is confirmed by decoding the span.

// tagBuckets is the bucket count for a segment of n rows: about one per
// sixteen rows, at least 1,024 (a bucket's rows of other pairs are mostly
// dropped by their fingerprints, so its directory need not be larger).
func tagBuckets(n int) int {
	b := 1024
	for b < n/16 && b < 1<<22 {
		b *= 2
	}
	return b
}

// A bucket's list (v3) groups its rows by attribute pair: for each pair of
// the bucket (groups ordered by first row, then fingerprint),
//
//	((first row − previous group's first row, from 0) << 1 | more):uvarint
//	fp:u8 [(count − 1):uvarint (row − previous row − 1):uvarint × (count − 1)]
//
// (the bracketed part only when more is 1: most pairs of a bucket that
// holds unique values have a single row)
// fp is tagFingerprint of the pair's hash: a search keeps only the groups
// of its pair's fingerprint, so the rows of the other pairs sharing the
// bucket are dropped without reading their spans (two pairs of one bucket
// may share a fingerprint: their rows are then merged, and the spans
// decide).
type tagBucket struct {
	fp    []uint8
	start []uint32 // group g's rows are rows[start[g]:start[g+1]]
	rows  []uint32
}

func (b *tagBucket) bytes() int64 { return int64(len(b.fp))*5 + int64(len(b.rows))*4 + 80 }

// tagFingerprint is the byte of h kept per bucket group (bucket numbers
// use h's low bits).
func tagFingerprint(h uint64) uint8 { return uint8(h >> 56) }

// decodeTagBucket decodes one bucket list of a segment of nRows rows.
func decodeTagBucket(b []byte, nRows int) (*tagBucket, error) {
	d := decoder{b: b}
	tb := &tagBucket{}
	first := uint64(0)
	for len(d.b) > 0 && d.err == nil {
		v := d.uvarint()
		first += v >> 1
		fp := d.u8()
		c := uint64(0)
		if v&1 != 0 {
			if c = d.uvarint(); c == 0 && d.err == nil {
				d.fail(errors.New("group of one row flagged as more"))
			}
		}
		if d.err != nil {
			break
		}
		if first >= uint64(nRows) || c >= uint64(nRows)-first {
			d.fail(fmt.Errorf("group of %d+%d rows at row %d of %d", c, 1, first, nRows))
			break
		}
		tb.fp = append(tb.fp, fp)
		tb.start = append(tb.start, uint32(len(tb.rows)))
		tb.rows = append(tb.rows, uint32(first))
		next := first + 1
		for range c {
			v := next + d.uvarint()
			if d.err != nil {
				break
			}
			if v >= uint64(nRows) {
				d.fail(fmt.Errorf("row %d of %d", v, nRows))
				break
			}
			tb.rows = append(tb.rows, uint32(v))
			next = v + 1
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	tb.start = append(tb.start, uint32(len(tb.rows)))
	return tb, nil
}

// appendTagBucket encodes one bucket's (row, hash) entries, sorted by row.
func appendTagBucket(dst []byte, ents []tagEntry) []byte {
	slices.SortStableFunc(ents, func(a, b tagEntry) int { return cmp.Compare(a.h, b.h) })
	type group struct{ lo, hi int }
	var groups []group
	for i := 0; i < len(ents); {
		j := i + 1
		for j < len(ents) && ents[j].h == ents[i].h {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	slices.SortFunc(groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(ents[a.lo].row, ents[b.lo].row), cmp.Compare(tagFingerprint(ents[a.lo].h), tagFingerprint(ents[b.lo].h)))
	})
	prev := uint32(0)
	for _, g := range groups {
		first := ents[g.lo].row
		more := uint64(0)
		if g.hi-g.lo > 1 {
			more = 1
		}
		dst = binary.AppendUvarint(dst, uint64(first-prev)<<1|more)
		dst = append(dst, tagFingerprint(ents[g.lo].h))
		if more == 1 {
			dst = binary.AppendUvarint(dst, uint64(g.hi-g.lo-1))
		}
		next := first + 1
		for _, e := range ents[g.lo+1 : g.hi] {
			dst = binary.AppendUvarint(dst, uint64(e.row-next))
			next = e.row + 1
		}
		prev = first
	}
	return dst
}

type tagEntry struct {
	row uint32
	h   uint64
}

// tagList returns the rows that may hold the pair with hash h; dense says
// the pair has no list (every row may hold it).
func (x *segIndex) tagList(h uint64) (rows []uint32, dense bool, err error) {
	if _, ok := slices.BinarySearch(x.dense, h); ok {
		return nil, true, nil
	}
	bk := uint32(h & uint64(x.nBuckets-1))
	tb, err := cached(x, kindTag, bk, func() (*tagBucket, error) {
		d, err := x.read(secTagDir, uint64(bk)*4, 8)
		if err != nil {
			return nil, err
		}
		lo, hi := le32(d, 0), le32(d, 4)
		if hi < lo {
			return nil, idxErr("attribute bucket %d at %d..%d", bk, lo, hi)
		}
		b, err := x.read(secTagPostings, uint64(lo), uint64(hi-lo))
		if err != nil {
			return nil, err
		}
		tb, err := decodeTagBucket(b, x.nRows)
		if err != nil {
			return nil, idxErr("attribute bucket %d: %v", bk, err)
		}
		return tb, nil
	})
	if err != nil {
		return nil, false, err
	}
	fp := tagFingerprint(h)
	n := 0
	for g, f := range tb.fp {
		if f != fp {
			continue
		}
		l := tb.rows[tb.start[g]:tb.start[g+1]]
		switch n++; n {
		case 1:
			rows = l
		default: // fingerprints collide: merge the groups
			rows = mergeRows(rows, l)
		}
	}
	return rows, false, nil
}

// mergeRows is the sorted union of two ascending row lists (a new slice).
func mergeRows(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// close releases the file and its cached blocks.
func (x *segIndex) close() error {
	if x.cache != nil {
		x.cache.dropFile(x.file)
	}
	if x.closer != nil {
		return x.closer.Close()
	}
	return nil
}

// decodeIndex checks an index file of size bytes read from r and decodes
// its small tables. segSize is the size of the segment file it must
// describe (-1 to skip that check). The whole file's checksum is checked
// here; every block read later is checked again (checksum, ids, orders)
// when it is decoded, so a damaged file is an error, never a crash or a
// wrong read.
func decodeIndex(r io.ReaderAt, size, segSize int64, dec *zstd.Decoder, cache *indexCache) (*segIndex, error) {
	if size < idxHeader+nSections*16+4 {
		return nil, idxErr("%d bytes, shorter than the header", size)
	}
	head := make([]byte, idxHeader+nSections*16)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if string(head[:8]) != idxMagic {
		return nil, idxErr("magic %q", head[:8])
	}
	sum, err := fileCRC(r, size-4)
	if err != nil {
		return nil, err
	}
	var tail [4]byte
	if _, err := r.ReadAt(tail[:], size-4); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if want := le32(tail[:], 0); sum != want {
		return nil, idxErr("checksum %08x, stored %08x", sum, want)
	}
	if v := le32(head, 8); v != idxVersion {
		return nil, idxErr("version %d, this build reads %d", v, idxVersion)
	}
	x := &segIndex{
		f: r, dec: dec, cache: cache,
		nRows: int(le32(head, 12)), segSize: int64(le64(head, 16)),
		minStart: int64(le64(head, 24)), maxStart: int64(le64(head, 32)), segCRC: le32(head, 40), nTraces: int(le32(head, 44)),
	}
	if cache != nil {
		x.file = cache.newFile()
	}
	if segSize >= 0 && x.segSize != segSize {
		return nil, idxErr("describes %d bytes of segment, the segment has %d", x.segSize, segSize)
	}
	body := uint64(size - 4)
	for i := range x.sec {
		off, n := le64(head, idxHeader+i*16), le64(head, idxHeader+i*16+8)
		if off < idxHeader+nSections*16 || off > body || n > body-off {
			return nil, idxErr("section %d at %d+%d outside the file", i, off, n)
		}
		x.sec[i] = fileSection{off, n}
	}
	if err := x.decodeSmall(); err != nil {
		return nil, err
	}
	return x, nil
}

// small reads a section kept in memory (bounded: these grow with the
// number of blocks, records and names, not rows).
func (x *segIndex) small(s int) ([]byte, error) { return x.read(s, 0, x.sec[s].len) }

// decodeSmall decodes the sections kept in memory.
func (x *segIndex) decodeSmall() error {
	var sec [nSections][]byte
	for _, s := range []int{secNames, secOps, secPeers, secDamage, secRecs, secRowDir, secTraceDir, secPostDir, secDense} {
		b, err := x.small(s)
		if err != nil {
			return err
		}
		sec[s] = b
	}
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
	d = decoder{b: sec[secRecs]}
	for len(d.b) > 0 && d.err == nil {
		off, n := d.uvarint(), d.uvarint()
		if d.err == nil && off+n > uint64(x.segSize) {
			d.fail(fmt.Errorf("record %d at %d+%d outside the segment", len(x.recs), off, n))
		}
		x.recs = append(x.recs, recRef{uint32(off), uint32(n)})
	}
	if d.err != nil {
		return idxErr("records: %v", d.err)
	}
	if err := x.decodeRowDir(sec[secRowDir]); err != nil {
		return err
	}
	if err := x.decodeTraceTables(sec[secTraceDir]); err != nil {
		return err
	}
	b = sec[secPostDir]
	if len(b)%postDirSize != 0 {
		return idxErr("posting directory of %d bytes", len(b))
	}
	for i := 0; i < len(b); i += postDirSize {
		p := postList{key: b[i], a: le32(b, i+4), b: le32(b, i+8), count: le32(b, i+12), off: le32(b, i+16), len: le32(b, i+20)}
		if p.key < postService || p.key > postPeer || p.a >= nn || p.key == postOperation && p.b >= nn || int(p.count) > x.nRows {
			return idxErr("posting list %d: key %d (%d, %d)", i/postDirSize, p.key, p.a, p.b)
		}
		if uint64(p.off)+uint64(p.len) > x.sec[secPostings].len {
			return idxErr("posting list %d outside its section", i/postDirSize)
		}
		if k := len(x.posts); k > 0 {
			q := x.posts[k-1]
			if cmp.Or(cmp.Compare(q.key, p.key), cmp.Compare(q.a, p.a), cmp.Compare(q.b, p.b)) >= 0 {
				return idxErr("posting list %d out of order", i/postDirSize)
			}
		}
		x.posts = append(x.posts, p)
	}
	return x.decodeTags(sec[secDense])
}

func (x *segIndex) decodeRowDir(b []byte) error {
	nb := (x.nRows + rowsPerBlock - 1) / rowsPerBlock
	if len(b) != nb*rowBlkSize {
		return idxErr("%d rows but a row block table of %d bytes", x.nRows, len(b))
	}
	for i := range nb {
		r := rowBlockRef{first: int64(le64(b, i*rowBlkSize)), off: le64(b, i*rowBlkSize+8), len: le32(b, i*rowBlkSize+16), firstRow: i * rowsPerBlock}
		if r.off > x.sec[secRows].len || uint64(r.len) > x.sec[secRows].len-r.off {
			return idxErr("row block %d outside its section", i)
		}
		if i > 0 && r.first > x.blocks[i-1].first {
			return idxErr("row block %d out of start-time order", i)
		}
		x.blocks = append(x.blocks, r)
	}
	if nb > 0 && (x.blocks[0].first > x.maxStart || x.blocks[0].first < x.minStart) {
		return idxErr("first row's start outside the segment's times")
	}
	return nil
}

func (x *segIndex) decodeTraceTables(dir []byte) error {
	if x.sec[secTraceIDs].len != uint64(x.nTraces)*16 || x.nTraces > x.nRows || x.nRows > 0 && x.nTraces == 0 {
		return idxErr("%d traces but a trace id table of %d bytes", x.nTraces, x.sec[secTraceIDs].len)
	}
	for c := 0; c < x.nTraces; c += idsPerChunk {
		b, err := x.read(secTraceIDs, uint64(c)*16, 16)
		if err != nil {
			return err
		}
		x.idSample = append(x.idSample, spans.TraceID(b))
		if k := len(x.idSample); k > 1 && bytes.Compare(x.idSample[k-2][:], b) >= 0 {
			return idxErr("trace id chunk %d out of order", k-1)
		}
	}
	nb := (x.nTraces + tracesPerBlk - 1) / tracesPerBlk
	if len(dir) != (nb+1)*4 {
		return idxErr("%d trace blocks but a directory of %d bytes", nb, len(dir))
	}
	for i := range nb + 1 {
		v := le32(dir, i*4)
		if uint64(v) > x.sec[secTraceRows].len || i > 0 && v < x.traceDir[i-1] {
			return idxErr("trace block %d at %d", i, v)
		}
		x.traceDir = append(x.traceDir, v)
	}
	return nil
}

func (x *segIndex) decodeTags(dense []byte) error {
	if x.sec[secTagDir].len == 0 && x.sec[secTagPostings].len == 0 {
		return nil
	}
	nb := int(x.sec[secTagDir].len/4) - 1
	if x.sec[secTagDir].len%4 != 0 || nb < 1 || nb&(nb-1) != 0 || len(dense)%8 != 0 {
		return idxErr("attribute directory of %d bytes, dense pairs of %d", x.sec[secTagDir].len, len(dense))
	}
	for i := 0; i < len(dense); i += 8 {
		h := le64(dense, i)
		if i > 0 && h <= x.dense[len(x.dense)-1] {
			return idxErr("dense attribute pairs out of order")
		}
		x.dense = append(x.dense, h)
	}
	x.nBuckets = nb
	return nil
}

// indexSource is what buildIndex reads of a segment being sealed: its rows
// in file order and its damage.
type indexSource struct {
	rows    int
	meta    func(i int) *spanMeta // row i, read in place (not kept)
	size    int64
	damaged []damagedRange
	// byTrace, when set, lists the rows of each trace id (the in-memory
	// index's map): the trace table is then built from its keys.
	byTrace map[spans.TraceID][]uint32
}

// segSource reads the in-memory index of a segment.
func segSource(seg *segment) indexSource {
	return indexSource{rows: seg.memRows.n, meta: seg.memRows.at, size: seg.size, damaged: seg.damaged, byTrace: seg.byTrace}
}

// idxRow is one row being encoded, with local ids.
type idxRow struct {
	trace            uint32
	start, dur       int64
	rec, off, length uint32
	svc, op, peer    uint32
	kind             spans.Kind
	status           spans.StatusCode
}

// rowKey is what the index order sorts by: start (descending), trace
// ordinal, then (record, offset) of the file row, read in place for the
// rare ties. 16 bytes a row, a quarter of a spanMeta: sealing copies no
// rows.
type rowKey struct {
	start int64
	ord   uint32
	row   uint32
}

// encodeIndex encodes the index of a sealed segment from its in-memory
// index. name maps an interned id to its text.
//
// Memory: besides the output sections, sealing holds a few arrays of 4 to
// 16 bytes per row (sort keys, trace ordinals, record numbers, the trace
// row table) and the segment's unique trace ids; the rows themselves are
// read in place and encoded one block at a time.
func encodeIndex(src indexSource, segCRC uint32, th *rowTagHashes, name func(uint32) string) *indexData {
	n := src.rows
	meta := src.meta
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
	// Records in file order (rows are appended in file order).
	var recs []recRef
	recOf := make([]uint32, n) // record index of each row
	for j := range n {
		m := meta(j)
		if len(recs) == 0 || recs[len(recs)-1].off != m.rec {
			recs = append(recs, recRef{m.rec, m.recLen})
		}
		recOf[j] = uint32(len(recs) - 1)
	}
	// Trace ordinals: rank of the trace id among the segment's.
	cmpID := func(a, b spans.TraceID) int { return bytes.Compare(a[:], b[:]) }
	keys := make([]rowKey, n)
	for i := range n {
		keys[i] = rowKey{start: meta(i).start, row: uint32(i)}
	}
	var ids []spans.TraceID
	if src.byTrace != nil && len(src.byTrace) <= n {
		ids = make([]spans.TraceID, 0, len(src.byTrace))
		for id := range src.byTrace {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, cmpID)
		seen := 0
		for o, id := range ids {
			for _, r := range src.byTrace[id] {
				if int(r) >= n || meta(int(r)).trace != id {
					seen = -1 << 62 // not the rows' map: use the rows
					break
				}
				keys[r].ord = uint32(o)
				seen++
			}
		}
		if seen != n {
			ids = nil
		}
	}
	if ids == nil {
		ids = make([]spans.TraceID, n)
		for i := range n {
			ids[i] = meta(i).trace
		}
		slices.SortFunc(ids, cmpID)
		if ids = slices.Compact(ids); cap(ids) > 2*len(ids) {
			ids = slices.Clone(ids) // few spans per trace: drop the copy of every row's id
		}
		for i := range n {
			o, _ := slices.BinarySearchFunc(ids, meta(i).trace, cmpID)
			keys[i].ord = uint32(o)
		}
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		if c := cmp.Or(cmp.Compare(b.start, a.start), cmp.Compare(a.ord, b.ord)); c != 0 {
			return c
		}
		ma, mb := meta(int(a.row)), meta(int(b.row))
		return cmp.Or(cmp.Compare(ma.rec, mb.rec), cmp.Compare(ma.off, mb.off))
	})
	// order[i] is the file row of index row i; the trace row table lists,
	// per trace ordinal, its index rows (ascending) as one array: trace t's
	// are traceRows[traceStart[t]:traceStart[t+1]].
	order := make([]uint32, n)
	traceStart := make([]uint32, len(ids)+1)
	for i, k := range keys {
		order[i] = k.row
		traceStart[k.ord+1]++
	}
	for t := range ids {
		traceStart[t+1] += traceStart[t]
	}
	traceRows := make([]uint32, n)
	fill := slices.Clone(traceStart[:len(ids)])
	for i, k := range keys {
		traceRows[fill[k.ord]] = uint32(i)
		fill[k.ord]++
	}
	fill = nil
	ordOf := func(i int) uint32 { return keys[i].ord } // of index row i
	ops := map[opEntry]struct{}{}
	peers := map[[2]uint32]struct{}{}
	type postKey struct {
		key  uint8
		a, b uint32
	}
	posts := map[postKey][]uint32{}
	var minStart, maxStart int64
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	// Posting lists are small and compress better at a higher level (row
	// blocks barely do). Not the best level: its match tables alone take
	// ~34 MiB per encoder, allocated at every seal.
	encPost, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	defer encPost.Close()
	var sec [nSections][]byte
	// The attribute sections first: the rows' hashes are then dropped
	// before the other sections grow.
	appendTagSections(&sec, order, th)
	th = nil
	// Row blocks, encoded as the rows are read (no array of all rows).
	var raw, z []byte
	blk := make([]idxRow, 0, rowsPerBlock)
	for lo := 0; lo < n; lo += rowsPerBlock {
		blk = blk[:0]
		for i := lo; i < min(n, lo+rowsPerBlock); i++ {
			o := order[i]
			m := meta(int(o))
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
			blk = append(blk, idxRow{ordOf(i), m.start, m.dur, recOf[o], m.off, m.length, svc, op, peer, m.kind, m.status})
		}
		raw = appendRowBlock(raw[:0], blk)
		off := len(sec[secRows])
		sec[secRows], z = appendSealedBlock(sec[secRows], enc, raw, z)
		sec[secRowDir] = binary.LittleEndian.AppendUint64(sec[secRowDir], uint64(blk[0].start))
		sec[secRowDir] = binary.LittleEndian.AppendUint64(sec[secRowDir], uint64(off))
		sec[secRowDir] = binary.LittleEndian.AppendUint32(sec[secRowDir], uint32(len(sec[secRows])-off))
	}
	recOf, keys = nil, nil
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
	sec[secDamage] = binary.AppendUvarint(nil, uint64(len(src.damaged)))
	for _, d := range src.damaged {
		sec[secDamage] = binary.AppendUvarint(sec[secDamage], uint64(d.off))
		sec[secDamage] = binary.AppendUvarint(sec[secDamage], uint64(d.n))
		sec[secDamage] = appendString(sec[secDamage], d.why)
	}
	for _, r := range recs {
		sec[secRecs] = binary.AppendUvarint(sec[secRecs], uint64(r.off))
		sec[secRecs] = binary.AppendUvarint(sec[secRecs], uint64(r.len))
	}
	for _, id := range ids {
		sec[secTraceIDs] = append(sec[secTraceIDs], id[:]...)
	}
	for lo := 0; lo < len(ids); lo += tracesPerBlk {
		sec[secTraceDir] = binary.LittleEndian.AppendUint32(sec[secTraceDir], uint32(len(sec[secTraceRows])))
		raw = raw[:0]
		for t := lo; t < min(len(ids), lo+tracesPerBlk); t++ {
			tr := traceRows[traceStart[t]:traceStart[t+1]]
			raw = binary.AppendUvarint(raw, uint64(len(tr)))
			raw = appendDeltas(raw, tr)
		}
		sec[secTraceRows], z = appendSealedBlock(sec[secTraceRows], enc, raw, z)
	}
	traceRows, traceStart = nil, nil
	sec[secTraceDir] = binary.LittleEndian.AppendUint32(sec[secTraceDir], uint32(len(sec[secTraceRows])))
	for _, k := range slices.SortedFunc(mapKeys(posts), func(a, b postKey) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.a, b.a), cmp.Compare(a.b, b.b))
	}) {
		l := posts[k]
		raw = appendDeltas(raw[:0], l)
		off := len(sec[secPostings])
		sec[secPostings], z = appendSealedBlock(sec[secPostings], encPost, raw, z)
		delete(posts, k)
		sec[secPostDir] = append(sec[secPostDir], k.key, 0, 0, 0)
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], k.a)
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], k.b)
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], uint32(len(l)))
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], uint32(off))
		sec[secPostDir] = binary.LittleEndian.AppendUint32(sec[secPostDir], uint32(len(sec[secPostings])-off))
	}

	head := make([]byte, idxHeader+nSections*16)
	copy(head, idxMagic)
	binary.LittleEndian.PutUint32(head[8:], idxVersion)
	binary.LittleEndian.PutUint32(head[12:], uint32(n))
	binary.LittleEndian.PutUint64(head[16:], uint64(src.size))
	binary.LittleEndian.PutUint64(head[24:], uint64(minStart))
	binary.LittleEndian.PutUint64(head[32:], uint64(maxStart))
	binary.LittleEndian.PutUint32(head[40:], segCRC)
	binary.LittleEndian.PutUint32(head[44:], uint32(len(ids)))
	off := uint64(len(head))
	for i, b := range sec {
		off = (off + 7) &^ 7
		binary.LittleEndian.PutUint64(head[idxHeader+i*16:], off)
		binary.LittleEndian.PutUint64(head[idxHeader+i*16+8:], uint64(len(b)))
		off += uint64(len(b))
	}
	return &indexData{head: head, sec: sec}
}

// indexData is an encoded index file held as its header and directory and
// its sections: it is written section by section (writeTo), never
// assembled into one buffer.
type indexData struct {
	head []byte
	sec  [nSections][]byte
}

// writeTo writes the file: header and directory, the sections at 8-aligned
// offsets, the CRC-32C of all that.
func (d *indexData) writeTo(w io.Writer) error {
	var pad [8]byte
	sum := crc32.Checksum(d.head, castagnoli)
	if _, err := w.Write(d.head); err != nil {
		return err
	}
	off := len(d.head)
	for _, b := range d.sec {
		if p := (8 - off%8) % 8; p > 0 {
			sum = crc32.Update(sum, castagnoli, pad[:p])
			if _, err := w.Write(pad[:p]); err != nil {
				return err
			}
			off += p
		}
		sum = crc32.Update(sum, castagnoli, b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		off += len(b)
	}
	_, err := w.Write(binary.LittleEndian.AppendUint32(nil, sum))
	return err
}

// bytes is the whole file in one buffer (tests).
func (d *indexData) bytes() []byte {
	var b bytes.Buffer
	d.writeTo(&b) //nolint:errcheck // a bytes.Buffer does not fail
	return b.Bytes()
}

// buildIndex is encodeIndex's file in one buffer.
func buildIndex(src indexSource, segCRC uint32, th *rowTagHashes, name func(uint32) string) []byte {
	return encodeIndex(src, segCRC, th, name).bytes()
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
func writeIndexFile(dir, path string, data *indexData) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	if err = data.writeTo(bw); err == nil {
		err = bw.Flush()
	}
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

// openIndexFile opens and checks an index file; the returned index reads
// it with pread through cache.
func openIndexFile(path string, segSize int64, dec *zstd.Decoder, cache *indexCache) (*segIndex, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	x, err := decodeIndex(f, st.Size(), segSize, dec, cache)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	x.closer = f
	return x, st.Size(), nil
}

// isIndexTemp says whether a directory entry is a leftover temporary index.
func isIndexTemp(name string) bool {
	return strings.HasPrefix(name, segPrefix) && strings.HasSuffix(name, idxSuffix+".tmp")
}

// fileCRC is the CRC-32C of the first size bytes of f.
func fileCRC(f io.ReaderAt, size int64) (uint32, error) {
	buf := make([]byte, min(size, 1<<20))
	var sum uint32
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		sum = crc32.Update(sum, castagnoli, buf[:n])
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			return 0, fmt.Errorf("checksum: %w", err)
		}
	}
	return sum, nil
}

// rowTagHashes holds the attribute pair hashes of each row of a segment in
// file order (the order of segment.metas).
type rowTagHashes struct {
	start  []uint32 // row i's hashes are hashes[start[i]:start[i+1]]
	hashes []uint64
}

// appendTagSections encodes the attribute postings of rows in index order
// (order[i] is the file-order row of index row i).
func appendTagSections(sec *[nSections][]byte, order []uint32, th *rowTagHashes) {
	if th == nil {
		return
	}
	n := len(order)
	count := map[uint64]int{}
	for o := range n {
		hs := th.hashes[th.start[o]:th.start[o+1]]
		for k, h := range hs {
			if !slices.Contains(hs[:k], h) {
				count[h]++
			}
		}
	}
	var dense []uint64
	for h, c := range count {
		if c > denseMinRows && c > n/denseFraction {
			dense = append(dense, h)
		}
	}
	slices.Sort(dense)
	nb := tagBuckets(n)
	lists := make([][]tagEntry, nb)
	for i, o := range order {
		hs := th.hashes[th.start[o]:th.start[o+1]]
		for k, h := range hs {
			if _, d := slices.BinarySearch(dense, h); d || slices.Contains(hs[:k], h) {
				continue
			}
			b := h & uint64(nb-1)
			lists[b] = append(lists[b], tagEntry{uint32(i), h})
		}
	}
	dir := make([]byte, 0, 4*(nb+1))
	var posts []byte
	for b, l := range lists {
		dir = binary.LittleEndian.AppendUint32(dir, uint32(len(posts)))
		posts = appendTagBucket(posts, l)
		lists[b] = nil
	}
	dir = binary.LittleEndian.AppendUint32(dir, uint32(len(posts)))
	for _, h := range dense {
		sec[secDense] = binary.LittleEndian.AppendUint64(sec[secDense], h)
	}
	sec[secTagDir], sec[secTagPostings] = dir, posts
}

// rowTraceID is row i's trace id.
func (x *segIndex) rowTraceID(i int) (spans.TraceID, error) {
	_, o, err := x.rowKey(i)
	if err != nil {
		return spans.TraceID{}, err
	}
	return x.traceID(int(o))
}
