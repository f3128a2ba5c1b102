package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/meshscope/meshscope/collector/spans"
)

// Segment files hold the write-ahead log, which is also the span storage:
// a segment is appended to until it reaches the configured size, then sealed
// (never written again) and deleted whole by retention.
//
//	file    = magic record*
//	magic   = "MSTSEG2\n"
//	record  = len:uint32le crc:uint32le(castagnoli, of payload) payload
//	payload = codec:u8 rawLen:uvarint body       (codec 0: body is raw; 1: zstd of raw)
//	raw     = count:uvarint span*                (one group commit)
//	span    = see codec.go
const (
	segMagic     = "MSTSEG2\n"
	recordHeader = 8
	segPrefix    = "seg-"
	segSuffix    = ".log"
	maxRecord    = 256 << 20 // larger length fields are corruption
	codecRaw     = 0
	codecZstd    = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segName(id uint32) string { return fmt.Sprintf("%s%010d%s", segPrefix, id, segSuffix) }

func parseSegName(name string) (uint32, bool) {
	if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 32)
	return uint32(n), err == nil
}

// spanMeta is what the store keeps in memory per span: enough to answer
// searches without touching disk (except for attribute filters) and to
// read the span back with one pread.
type spanMeta struct {
	trace  spans.TraceID
	rec    uint32 // offset of the record's payload in the segment file
	recLen uint32 // length of the payload on disk
	off    uint32 // offset of the span in the record's raw (decompressed) body
	length uint32 // length of the span's encoding
	start  int64
	dur    int64
	svc    uint32 // interned service name
	op     uint32 // interned operation name
	kind   spans.Kind
	status spans.StatusCode
	peer   uint32 // interned peer service of a CLIENT span + 1; 0 = none
}

type segment struct {
	id       uint32
	path     string
	f        *os.File
	size     int64
	memRows  metaRows // the in-memory index's rows, in file order
	minStart int64
	maxStart int64
	lastData time.Time      // wall time of the last write (retention by age)
	recs     []recInfo      // the segment's records in file order (append-only)
	damaged  []damagedRange // unreadable stretches skipped at open
	// hashCount is the number of attribute pair hashes of the rows (what
	// the records' filters were built from), to size the sealing's arrays.
	hashCount int
	// byTrace maps a trace id to its rows in memRows (in-memory index only).
	byTrace map[spans.TraceID][]uint32
	// idx is the on-disk index of a sealed segment; when set, memRows, recs
	// and byTrace are empty and every lookup goes to the index.
	idx     *segIndex
	idxSize int64 // bytes of the index file
}

// rows is the number of spans the segment's index holds.
func (s *segment) rows() int {
	if s.idx != nil {
		return s.idx.nRows
	}
	return s.memRows.n
}

// recInfo is what the index keeps per record.
type recInfo struct {
	off   uint32 // payload offset, as in spanMeta.rec
	first uint32 // index of the record's first row in segment.memRows
	bloom *attrBloom
}

func (s *segment) note(m spanMeta) {
	if s.memRows.n == 0 || m.start < s.minStart {
		s.minStart = m.start
	}
	if s.memRows.n == 0 || m.start > s.maxStart {
		s.maxStart = m.start
	}
	s.memRows.add(m)
}

// metaChunkBits sets the rows per chunk of metaRows (4,096 rows, 256 KiB).
const metaChunkBits = 12

// metaRows holds rows in fixed-size chunks: appending never copies what is
// stored (no doubling of a large array, whose old and new copies would
// both be live while it grows), and at most one chunk is partly empty.
// A copy of the value is a snapshot: rows below its n never change, and
// rows are only ever added above it (in place or in new chunks).
type metaRows struct {
	chunks []*[1 << metaChunkBits]spanMeta
	n      int
}

// at returns row i (i < n).
func (r *metaRows) at(i int) *spanMeta {
	return &r.chunks[i>>metaChunkBits][i&(1<<metaChunkBits-1)]
}

func (r *metaRows) add(m spanMeta) {
	if r.n>>metaChunkBits == len(r.chunks) {
		r.chunks = append(r.chunks, new([1 << metaChunkBits]spanMeta))
	}
	*r.at(r.n) = m
	r.n++
}

func listSegments(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list trace segments in %s: %w", dir, err)
	}
	var ids []uint32
	for _, e := range ents {
		if id, ok := parseSegName(e.Name()); ok && !e.IsDir() {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// damagedRange is a stretch of a segment that holds no readable record.
type damagedRange struct {
	off, n int64
	why    string
}

// replayResult is what replaying one segment found.
type replayResult struct {
	// end is the offset just past the last intact record (the magic's end
	// when there is none).
	end int64
	// damaged lists unreadable stretches before end: each was skipped and
	// the records after it were kept.
	damaged []damagedRange
	// tail is the unreadable stretch from end to the end of the file, if
	// any: in the active segment a torn write from a crash.
	tail *damagedRange
}

// zstdMagic starts every zstd frame (RFC 8878 §3.1.1).
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// recordProbe is how many bytes plausibleRecord looks at.
const recordProbe = recordHeader + 1 + binary.MaxVarintLen64 + 4

// plausibleRecord says whether b (at least recordProbe bytes, or up to the
// end of the file) could start a record of a file with avail bytes from b's
// start on: a length that fits, a known codec, a raw length that agrees with
// the record length (raw) or a zstd frame magic (zstd). It rejects almost
// every offset inside a damaged stretch without reading a payload, so the
// resynchronising scan computes a checksum only at real record starts.
func plausibleRecord(b []byte, avail int64) bool {
	if len(b) < recordHeader+2 {
		return false
	}
	n := int64(binary.LittleEndian.Uint32(b))
	if n < 2 || n > maxRecord || n > avail-recordHeader {
		return false
	}
	p := b[recordHeader:]
	rawLen, k := binary.Uvarint(p[1:])
	if k <= 0 || rawLen > maxRecord {
		return false
	}
	switch p[0] {
	case codecRaw:
		return int64(1+k)+int64(rawLen) == n
	case codecZstd:
		return int64(1+k+len(zstdMagic)) <= n && len(p) >= 1+k+len(zstdMagic) && bytes.Equal(p[1+k:1+k+len(zstdMagic)], zstdMagic)
	}
	return false
}

// segReader reads the records of one segment file.
type segReader struct {
	f       io.ReaderAt
	size    int64
	dec     *zstd.Decoder
	hdr     [recordHeader]byte
	payload []byte
	raw     []byte
	spans   []spans.Span
	offs    []spanLoc
	// hashOnly reads each span's attribute pair hashes (into hashes, span
	// i's ending at hashEnd[i]) instead of decoding it into spans.
	hashOnly bool
	hashes   []uint64
	hashEnd  []int
}

// readRecord reads, checks and decodes the record at off; on success
// r.spans and r.offs hold its spans and their locations, and it returns the
// offset after the record.
func (r *segReader) readRecord(off int64) (next int64, err error) {
	if r.size-off < recordHeader {
		return 0, fmt.Errorf("short record header (%d bytes)", r.size-off)
	}
	if _, err := r.f.ReadAt(r.hdr[:], off); err != nil {
		return 0, fmt.Errorf("record header: %w", err)
	}
	n := int64(binary.LittleEndian.Uint32(r.hdr[:]))
	sum := binary.LittleEndian.Uint32(r.hdr[4:])
	if n > maxRecord {
		return 0, fmt.Errorf("length %d too large", n)
	}
	if n > r.size-off-recordHeader {
		return 0, fmt.Errorf("length %d runs past the end of the file", n)
	}
	if int64(cap(r.payload)) < n {
		r.payload = make([]byte, n)
	}
	r.payload = r.payload[:n]
	if _, err := r.f.ReadAt(r.payload, off+recordHeader); err != nil {
		return 0, fmt.Errorf("record payload: %w", err)
	}
	if crc32.Checksum(r.payload, castagnoli) != sum {
		return 0, errors.New("checksum mismatch")
	}
	raw, err := decodePayload(r.dec, r.payload, r.raw[:0])
	if err != nil {
		return 0, err
	}
	if r.payload[0] == codecZstd && cap(raw) > cap(r.raw) {
		r.raw = raw[:0] // reuse the decompression buffer (a raw body aliases payload)
	}
	count, k := binary.Uvarint(raw)
	if k <= 0 || count > uint64(len(raw)) {
		return 0, errors.New("bad span count")
	}
	rest := raw[k:]
	r.spans, r.offs = r.spans[:0], r.offs[:0]
	r.hashes, r.hashEnd = r.hashes[:0], r.hashEnd[:0]
	loc := spanLoc{rec: uint32(off + recordHeader), recLen: uint32(n)}
	if recordIsBlocks(rest) {
		if err := r.readBlocks(raw, rest, count, loc); err != nil {
			return 0, err
		}
		return off + recordHeader + n, nil
	}
	for i := uint64(0); i < count; i++ {
		var next []byte
		var err error
		if r.hashOnly {
			r.hashes, next, err = spanAttrHashes(r.hashes, rest)
			r.hashEnd = append(r.hashEnd, len(r.hashes))
		} else {
			r.spans = append(r.spans, spans.Span{})
			next, err = decodeSpan(rest, &r.spans[len(r.spans)-1])
		}
		if err != nil {
			return 0, fmt.Errorf("span %d: %w", i, err)
		}
		loc.off = uint32(len(raw) - len(rest))
		loc.length = uint32(len(rest) - len(next))
		r.offs = append(r.offs, loc)
		rest = next
	}
	return off + recordHeader + n, nil
}

// readBlocks reads the span blocks of a record (raw its raw body, rest
// what follows the span count), which must hold count spans in all and end
// with the record.
func (r *segReader) readBlocks(raw, rest []byte, count uint64, loc spanLoc) error {
	i := uint64(0)
	for len(rest) > 0 {
		n, tb, bodies, next, err := blockHeader(rest)
		if err != nil {
			return fmt.Errorf("block at %d: %w", len(raw)-len(rest), err)
		}
		t, err := parseBlockTable(tb)
		if err != nil {
			return fmt.Errorf("block at %d: %w", len(raw)-len(rest), err)
		}
		if r.hashOnly {
			t.withHashes()
		}
		blk := bodies
		for range n {
			var after []byte
			at := len(blk) - len(bodies)
			if r.hashOnly {
				r.hashes, after, err = bodyAttrHashes(r.hashes, bodies, t, blk, at)
				r.hashEnd = append(r.hashEnd, len(r.hashes))
			} else {
				r.spans = append(r.spans, spans.Span{})
				after, err = decodeBody(bodies, t, &r.spans[len(r.spans)-1], blk, at)
			}
			if err != nil {
				return fmt.Errorf("span %d: %w", i, err)
			}
			loc.off = uint32(len(raw) - len(next) - len(bodies)) // bodies ends with the block
			loc.length = uint32(len(bodies) - len(after))
			r.offs = append(r.offs, loc)
			bodies = after
			i++
		}
		if len(bodies) != 0 {
			return fmt.Errorf("block at %d: %d stray bytes after its spans", len(raw)-len(rest), len(bodies))
		}
		rest = next
	}
	if i != count {
		return fmt.Errorf("record holds %d spans, its header says %d", i, count)
	}
	return nil
}

// resync returns the offset of the first intact record at or after from,
// or -1 when there is none; on success the record is decoded as by
// readRecord and next is the offset after it.
func (r *segReader) resync(from int64) (at, next int64, err error) {
	window := min(int64(1<<20), max(r.size-from, 0))
	buf := make([]byte, window+recordProbe)
	for base := from; base < r.size; base += window {
		n, err := r.f.ReadAt(buf, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return -1, 0, fmt.Errorf("scan at %d: %w", base, err)
		}
		for i := 0; i < n && int64(i) < window; i++ {
			if !plausibleRecord(buf[i:n], r.size-base-int64(i)) {
				continue
			}
			if next, err := r.readRecord(base + int64(i)); err == nil {
				return base + int64(i), next, nil
			}
		}
	}
	return -1, 0, nil
}

// replaySegment reads every intact record of a segment in file order,
// calling fn for each span with its location. A record that is short, has
// an absurd length, a wrong checksum or does not decode is skipped: the
// reader resynchronises on the next intact record (plausible framing, then
// the checksum, then a full decode) and keeps everything after it. What
// could not be read is reported in the result; err is an I/O error or fn's.
func replaySegment(f io.ReaderAt, size int64, dec *zstd.Decoder, fn func(s *spans.Span, loc spanLoc) error) (replayResult, error) {
	r := &segReader{f: f, size: size, dec: dec}
	return r.replay(func() error {
		for i := range r.spans {
			if err := fn(&r.spans[i], r.offs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// replayHashes reads the records of a segment as replaySegment does
// (skipping the same damage), calling fn for each span with its attribute
// pair hashes (valid during the call) and its location. It decodes no span.
func replayHashes(f io.ReaderAt, size int64, dec *zstd.Decoder, fn func(hashes []uint64, loc spanLoc) error) (replayResult, error) {
	r := &segReader{f: f, size: size, dec: dec, hashOnly: true}
	return r.replay(func() error {
		from := 0
		for i, end := range r.hashEnd {
			if err := fn(r.hashes[from:end], r.offs[i]); err != nil {
				return err
			}
			from = end
		}
		return nil
	})
}

// replay reads every intact record from the start, calling emit after
// each one is read (see replaySegment).
func (r *segReader) replay(emit func() error) (replayResult, error) {
	f := r.f
	magic := make([]byte, len(segMagic))
	if _, err := f.ReadAt(magic, 0); err != nil {
		// A crash between create and the magic's write leaves a short file.
		return replayResult{tail: &damagedRange{0, r.size, fmt.Sprintf("segment header: %v", err)}}, nil
	}
	res := replayResult{end: int64(len(segMagic))}
	if string(magic) != segMagic {
		// Damaged like any record: keep what follows.
		res.damaged = append(res.damaged, damagedRange{0, int64(len(segMagic)), fmt.Sprintf("bad segment magic %q", magic)})
	}
	for pos := res.end; pos < r.size; {
		next, rerr := r.readRecord(pos)
		if rerr != nil {
			at, n, err := r.resync(pos + 1)
			if err != nil {
				return res, err
			}
			if at < 0 {
				res.tail = &damagedRange{pos, r.size - pos, fmt.Sprintf("record at %d: %v", pos, rerr)}
				return res, nil
			}
			res.damaged = append(res.damaged, damagedRange{pos, at - pos, fmt.Sprintf("record at %d: %v", pos, rerr)})
			next = n
		}
		if err := emit(); err != nil {
			return res, err
		}
		pos, res.end = next, next
	}
	return res, nil
}

// spanLoc is where a span's encoding is: its record and its place in the
// record's raw body.
type spanLoc struct {
	rec, recLen, off, length uint32
}

// decodePayload returns the raw body of a record payload, appending to dst
// when it has to decompress.
func decodePayload(dec *zstd.Decoder, payload, dst []byte) ([]byte, error) {
	if len(payload) < 2 {
		return nil, errors.New("short record payload")
	}
	codec := payload[0]
	rawLen, k := binary.Uvarint(payload[1:])
	if k <= 0 || rawLen > maxRecord {
		return nil, errors.New("bad raw length")
	}
	body := payload[1+k:]
	switch codec {
	case codecRaw:
		if uint64(len(body)) != rawLen {
			return nil, fmt.Errorf("raw body of %d bytes, header says %d", len(body), rawLen)
		}
		return body, nil
	case codecZstd:
		if cap(dst) < int(rawLen) {
			dst = make([]byte, 0, rawLen)
		}
		out, err := dec.DecodeAll(body, dst[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if uint64(len(out)) != rawLen {
			return nil, fmt.Errorf("decompressed %d bytes, header says %d", len(out), rawLen)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown record codec %d", codec)
}
