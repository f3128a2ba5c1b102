package embedded

import (
	"bufio"
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
}

type segment struct {
	id       uint32
	path     string
	f        *os.File
	size     int64
	metas    []spanMeta
	minStart int64
	maxStart int64
	lastData time.Time // wall time of the last write (retention by age)
	recs     []recInfo // the segment's records in file order (append-only)
}

// recInfo is what the index keeps per record.
type recInfo struct {
	off   uint32 // payload offset, as in spanMeta.rec
	first uint32 // index of the record's first row in segment.metas
	bloom *attrBloom
}

func (s *segment) note(m spanMeta) {
	if len(s.metas) == 0 || m.start < s.minStart {
		s.minStart = m.start
	}
	if len(s.metas) == 0 || m.start > s.maxStart {
		s.maxStart = m.start
	}
	s.metas = append(s.metas, m)
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

// replaySegment reads every intact record of a segment, calling fn for each
// span with its location. It returns the offset just past the last intact
// record; a torn or corrupt tail (a crash mid-write) ends the replay there
// and is reported as tailErr.
func replaySegment(f *os.File, dec *zstd.Decoder, fn func(s *spans.Span, loc spanLoc) error) (good int64, tailErr error, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(segMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		// A crash between create and the magic's write leaves a short file.
		return 0, fmt.Errorf("segment header: %w", err), nil
	}
	if string(magic) != segMagic {
		return 0, nil, fmt.Errorf("not a trace segment (bad magic %q)", magic)
	}
	good = int64(len(segMagic))
	hdr := make([]byte, recordHeader)
	var payload, raw []byte
	var sp spans.Span
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return good, nil, nil
			}
			return good, fmt.Errorf("record header at %d: %w", good, err), nil
		}
		n := binary.LittleEndian.Uint32(hdr)
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if n > maxRecord {
			return good, fmt.Errorf("record at %d: length %d too large", good, n), nil
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return good, fmt.Errorf("record at %d: %w", good, err), nil
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			return good, fmt.Errorf("record at %d: checksum mismatch", good), nil
		}
		raw, err = decodePayload(dec, payload, raw[:0])
		if err != nil {
			return good, fmt.Errorf("record at %d: %w", good, err), nil
		}
		count, k := binary.Uvarint(raw)
		if k <= 0 {
			return good, fmt.Errorf("record at %d: bad span count", good), nil
		}
		rest := raw[k:]
		loc := spanLoc{rec: uint32(good + recordHeader), recLen: n}
		for i := uint64(0); i < count; i++ {
			next, derr := decodeSpan(rest, &sp)
			if derr != nil {
				return good, fmt.Errorf("record at %d span %d: %w", good, i, derr), nil
			}
			loc.off = uint32(len(raw) - len(rest))
			loc.length = uint32(len(rest) - len(next))
			if err := fn(&sp, loc); err != nil {
				return good, nil, err
			}
			rest = next
		}
		good += recordHeader + int64(n)
	}
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
