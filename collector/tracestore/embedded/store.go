package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// Config configures the embedded trace store.
type Config struct {
	// Dir is the directory holding the segment files (created if missing).
	// The server uses <data>/traces. Required.
	Dir string `yaml:"dir"`
	// Retention deletes sealed segments whose last write is older than this.
	// Default 168h (7 days); 0 in YAML means the default. Unit: duration.
	Retention time.Duration `yaml:"retention"`
	// MaxBytes caps the bytes on disk (segments and their index files);
	// the oldest sealed segments are deleted first. Default 1 GiB. Unit:
	// bytes.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which the active segment is sealed (its
	// index file written) and a new one started. Only the active segment
	// is indexed in memory, so this bounds the index's RAM (see
	// docs/format/traces.md). Default 8 MiB (~260k realistic spans), at most
	// MaxBytes/4. Unit: bytes.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// GroupCommitBytes bounds how many bytes of waiting batches one fsync
	// covers. Default 8 MiB. Unit: bytes.
	GroupCommitBytes int `yaml:"group_commit_bytes"`
	// RetentionInterval is how often retention runs. Default 1m.
	RetentionInterval time.Duration `yaml:"retention_interval"`
	// Compression of WAL records: "zstd" (default) or "none".
	Compression string `yaml:"compression"`
	// CacheBytes bounds the cache of decompressed records used by reads.
	// Default 32 MiB. Unit: bytes.
	CacheBytes int64 `yaml:"cache_bytes"`
	// IndexCacheBytes bounds the cache of decoded blocks of the sealed
	// segments' index files (read with pread, never mapped). Default 32 MiB.
	// Unit: bytes.
	IndexCacheBytes int64 `yaml:"index_cache_bytes"`
	// NoSync skips fsync (data acknowledged before it is durable). For
	// benchmarks comparing the cost of durability only. Default false.
	NoSync bool `yaml:"no_sync"`
}

// Defaults.
const (
	DefaultRetention         = 7 * 24 * time.Hour
	DefaultMaxBytes          = 1 << 30
	DefaultSegmentBytes      = 8 << 20
	DefaultGroupCommitBytes  = 8 << 20
	DefaultRetentionInterval = time.Minute
	DefaultIndexCacheBytes   = 32 << 20
)

func (c *Config) withDefaults() Config {
	out := *c
	if out.Retention == 0 {
		out.Retention = DefaultRetention
	}
	if out.MaxBytes == 0 {
		out.MaxBytes = DefaultMaxBytes
	}
	if out.SegmentBytes == 0 {
		out.SegmentBytes = DefaultSegmentBytes
		if q := out.MaxBytes / 4; q < out.SegmentBytes {
			out.SegmentBytes = max(q, 1<<20)
		}
	}
	if out.GroupCommitBytes == 0 {
		out.GroupCommitBytes = DefaultGroupCommitBytes
	}
	if out.RetentionInterval == 0 {
		out.RetentionInterval = DefaultRetentionInterval
	}
	if out.Compression == "" {
		out.Compression = "zstd"
	}
	if out.CacheBytes == 0 {
		out.CacheBytes = 32 << 20
	}
	if out.IndexCacheBytes == 0 {
		out.IndexCacheBytes = DefaultIndexCacheBytes
	}
	return out
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("traces.dir: must be set")
	case c.Retention < 0:
		return fmt.Errorf("traces.retention: %v must not be negative", c.Retention)
	case c.MaxBytes < 0:
		return fmt.Errorf("traces.max_bytes: %d must not be negative", c.MaxBytes)
	case c.MaxBytes > 0 && c.MaxBytes < 4<<20:
		return fmt.Errorf("traces.max_bytes: %d is below the minimum of 4 MiB", c.MaxBytes)
	case c.SegmentBytes < 0 || c.SegmentBytes > 1<<31:
		return fmt.Errorf("traces.segment_bytes: %d out of range (0 to 2 GiB)", c.SegmentBytes)
	case c.GroupCommitBytes < 0:
		return fmt.Errorf("traces.group_commit_bytes: %d must not be negative", c.GroupCommitBytes)
	case c.Compression != "" && c.Compression != "zstd" && c.Compression != "none":
		return fmt.Errorf("traces.compression: %q, want zstd or none", c.Compression)
	case c.CacheBytes < 0:
		return fmt.Errorf("traces.cache_bytes: %d must not be negative", c.CacheBytes)
	case c.IndexCacheBytes < 0:
		return fmt.Errorf("traces.index_cache_bytes: %d must not be negative", c.IndexCacheBytes)
	case c.RetentionInterval < 0:
		return fmt.Errorf("traces.retention_interval: %v must not be negative", c.RetentionInterval)
	}
	return nil
}

// encoderWindow is the zstd window of WAL records.
const encoderWindow = 1 << 20

// Store is the embedded trace store. See docs/format/traces.md.
type Store struct {
	cfg    Config
	logger *slog.Logger
	m      *storeMetrics
	enc    *zstd.Encoder // used by the write loop only
	// payloads recycles the encoding buffers of WriteSpans: the write loop
	// returns each one once it has copied it into its record.
	payloads sync.Pool
	dec      *zstd.Decoder // concurrency-safe DecodeAll
	cache    *recordCache
	tables   *tableCache // parsed span block tables of cached records
	icache   *indexCache

	writes chan *writeReq
	stop   chan struct{}
	// seals hands segments the write loop sealed to the sealer, which
	// writes their index files; one may wait, so at most two sealed
	// segments keep an in-memory index besides the active one.
	seals     chan *segment
	sealsDone sync.WaitGroup
	sealing   sync.WaitGroup // segments handed over and not yet indexed
	done      sync.WaitGroup
	closeMu   sync.RWMutex // held shared while enqueueing, exclusively to start Close
	closing   bool

	// Lock order: readMu before mu. Queries hold readMu shared for their
	// whole run (so retention cannot close a file under them) and mu only
	// to snapshot the index; the write loop takes mu alone, so long
	// searches never stall ingest.
	readMu     sync.RWMutex
	mu         sync.RWMutex
	segs       []*segment        // oldest first; the last one is active
	names      []string          // interned service and operation names
	nameIDs    map[string]uint32 // name → index into names
	ops        map[uint32]map[opKey]struct{}
	peers      map[uint32]map[uint32]struct{} // service called by CLIENT spans → their operations
	totalLen   int64
	bloomBytes int64
	closed     bool

	// What open read: segments replayed (no usable index, or the active
	// one) and their bytes. Set before New returns.
	replayedSegs  int
	replayedBytes int64
}

type opKey struct {
	op   uint32
	kind spans.Kind
}

type writeReq struct {
	payload []byte   // encoded spans, back to back (recycled once copied)
	size    int      // len(payload)
	offs    []uint32 // start of each span in payload
	lens    []uint32 // length of each span's encoding
	order   []int32  // the batch's indexes in the order of their encodings
	batch   []spans.Span
	done    chan error
}

// New opens (or creates) the store in cfg.Dir, replaying its segments.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		logger:  logger,
		writes:  make(chan *writeReq, 1024),
		stop:    make(chan struct{}),
		nameIDs: map[string]uint32{},
		ops:     map[uint32]map[opKey]struct{}{},
		peers:   map[uint32]map[uint32]struct{}{},
	}
	var err error
	if s.m, err = newStoreMetrics(reg); err != nil {
		return nil, err
	}
	if s.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxRecord)); err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	// A 1 MiB window: realistic spans compress to the same size as with
	// the default 8 MiB one (their repeats are close together), and the
	// encoder's history buffer is twice the window (2 MiB, not 16).
	if s.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(encoderWindow)); err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	s.cache = newRecordCache(cfg.CacheBytes)
	s.tables = newTableCache(max(cfg.CacheBytes/8, 1<<20))
	s.icache = newIndexCache(cfg.IndexCacheBytes)
	if err := s.replay(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if !s.reusable() {
		if err := s.newSegment(); err != nil {
			s.closeFiles()
			return nil, err
		}
		if n := len(s.segs); n > 1 && s.segs[n-2].idx == nil {
			s.sealIndex(s.segs[n-2]) // the last segment was full or damaged
		}
	}
	s.seals = make(chan *segment, 1)
	s.sealsDone.Add(1)
	go s.sealLoop()
	s.done.Add(2)
	go s.writeLoop()
	go s.retentionLoop()
	return s, nil
}

func (s *Store) intern(name string) uint32 {
	if id, ok := s.nameIDs[name]; ok {
		return id
	}
	id := uint32(len(s.names))
	s.names = append(s.names, name)
	s.nameIDs[name] = id
	return id
}

// replay opens every segment: a sealed one through its index file when
// that is intact and describes the segment as it is on disk, else (and the
// active one always) by replaying its records; a sealed segment replayed
// gets its index (re)written.
func (s *Store) replay() error {
	ids, err := listSegments(s.cfg.Dir)
	if err != nil {
		return err
	}
	s.removeStrayIndexes(ids)
	n := 0
	for i, id := range ids {
		path := filepath.Join(s.cfg.Dir, segName(id))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("trace store: open %s: %w", path, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("trace store: %w", err)
		}
		seg := &segment{id: id, path: path, f: f, size: st.Size(), lastData: st.ModTime()}
		active := i == len(ids)-1
		if !active && s.loadIndex(seg) {
			s.segs = append(s.segs, seg)
			continue
		}
		if err := s.replaySegment(seg, active); err != nil {
			f.Close()
			return err
		}
		n += seg.memRows.n
		s.segs = append(s.segs, seg)
		s.totalLen += seg.size
		s.m.bytes.Set(float64(s.totalLen))
		s.m.spans.Add(float64(seg.memRows.n))
		if !active {
			s.sealIndex(seg)
		}
	}
	if s.replayedSegs > 0 {
		s.logger.Info("trace store: replayed", "segments", s.replayedSegs, "of", len(ids), "spans", n, "bytes", s.replayedBytes)
	}
	return nil
}

// removeStrayIndexes deletes index files without a segment (a crash
// between the two deletions of retention) and unfinished temporary ones.
func (s *Store) removeStrayIndexes(ids []uint32) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		stray := isIndexTemp(name)
		if strings.HasPrefix(name, segPrefix) && strings.HasSuffix(name, idxSuffix) {
			id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), idxSuffix), 10, 32)
			stray = err == nil && !slices.Contains(ids, uint32(id))
		}
		if stray {
			if err := os.Remove(filepath.Join(s.cfg.Dir, name)); err == nil {
				s.logger.Info("trace store: removed stray index file", "file", name)
			}
		}
	}
}

// loadIndex opens a sealed segment through its index file. It returns
// false (and logs why) when the file is missing, damaged or does not
// describe the segment as it is on disk (checked by size and CRC-32C of the
// segment): the caller then replays the segment and rewrites its index.
func (s *Store) loadIndex(seg *segment) bool {
	path := filepath.Join(s.cfg.Dir, idxName(seg.id))
	x, size, err := openIndexFile(path, seg.size, s.dec, s.icache)
	if err == nil {
		var sum uint32
		if sum, err = fileCRC(seg.f, seg.size); err == nil && sum != x.segCRC {
			err = fmt.Errorf("segment checksum %08x, index was written for %08x: the segment changed since it was sealed (damage?)", sum, x.segCRC)
		}
		if err != nil {
			x.close()
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.logger.Warn("trace store: segment has no index file; rebuilding it from the segment", "segment", seg.path)
		} else {
			s.logger.Warn("trace store: index file unusable; rebuilding it from the segment", "segment", seg.path, "err", err)
		}
		return false
	}
	s.attachIndex(seg, x, size)
	for _, d := range seg.damaged {
		s.reportDamage(seg, d)
	}
	s.totalLen += seg.size + size
	s.m.bytes.Set(float64(s.totalLen))
	s.m.spans.Add(float64(x.nRows))
	return true
}

// attachIndex makes an opened index the segment's index: names are
// interned and the operation listings updated. Caller holds s.mu (or is
// open).
func (s *Store) attachIndex(seg *segment, x *segIndex, size int64) {
	x.global = make([]uint32, len(x.names))
	x.local = make(map[uint32]uint32, len(x.names))
	for i, n := range x.names {
		g := s.intern(n)
		x.global[i] = g
		x.local[g] = uint32(i)
	}
	for _, e := range x.ops {
		svc := x.global[e.svc]
		ops := s.ops[svc]
		if ops == nil {
			ops = map[opKey]struct{}{}
			s.ops[svc] = ops
		}
		ops[opKey{x.global[e.op], e.kind}] = struct{}{}
	}
	for _, p := range x.peers {
		peer := x.global[p[0]]
		callers := s.peers[peer]
		if callers == nil {
			callers = map[uint32]struct{}{}
			s.peers[peer] = callers
		}
		callers[x.global[p[1]]] = struct{}{}
	}
	for _, r := range seg.recs {
		s.bloomBytes -= int64(r.bloom.bytes())
	}
	seg.idx, seg.idxSize = x, size
	seg.minStart, seg.maxStart = x.minStart, x.maxStart
	seg.damaged = x.damaged
	seg.memRows, seg.recs, seg.byTrace = metaRows{}, nil, nil
}

// sealLoop writes the index files of the segments the write loop seals,
// off the write path.
func (s *Store) sealLoop() {
	defer s.sealsDone.Done()
	for seg := range s.seals {
		s.sealIndex(seg)
		s.sealing.Done()
	}
}

// sealIndex writes the index file of a sealed segment and switches the
// segment to it, releasing its in-memory index. On failure (a full disk)
// the segment keeps its in-memory index and the next open rebuilds the
// file. Called by the write loop or open only.
func (s *Store) sealIndex(seg *segment) {
	t0 := time.Now()
	path := filepath.Join(s.cfg.Dir, idxName(seg.id))
	s.readMu.RLock() // retention must not close the file meanwhile
	defer s.readMu.RUnlock()
	s.mu.RLock()
	gone := s.segByID(seg.id) != seg
	s.mu.RUnlock()
	if gone {
		return // retention deleted it first
	}
	sum, err := fileCRC(seg.f, seg.size)
	var x *segIndex
	var size int64
	if err == nil {
		s.mu.RLock()
		names := s.names // existing entries never change
		s.mu.RUnlock()
		th := s.tagHashes(seg)
		err = writeIndexFile(s.cfg.Dir, path, encodeIndex(segSource(seg), sum, th, func(id uint32) string { return names[id] }))
	}
	if err == nil {
		x, size, err = openIndexFile(path, seg.size, s.dec, s.icache)
	}
	if err != nil {
		s.logger.Error("trace store: could not write the index of a sealed segment; it stays in memory until the next start", "segment", seg.path, "err", err)
		return
	}
	s.mu.Lock()
	s.attachIndex(seg, x, size)
	s.totalLen += size
	total := s.totalLen
	s.mu.Unlock()
	s.m.bytes.Set(float64(total))
	s.logger.Debug("trace store: wrote segment index", "segment", seg.path, "spans", x.nRows, "bytes", size, "took", time.Since(t0))
}

// tagHashes reads a sealed segment's spans again for the attribute pair
// hashes of each row (the in-memory index keeps only per-record filters).
// It returns nil, and the index then has no tag postings (searches fall
// back to the record filters), when the spans read do not line up with the
// rows.
func (s *Store) tagHashes(seg *segment) *rowTagHashes {
	// Exact sizes: the records' filters counted the hashes as they were
	// written, so the arrays are allocated once.
	th := &rowTagHashes{start: make([]uint32, 0, seg.memRows.n+1), hashes: make([]uint64, 0, seg.hashCount)}
	i := 0
	_, err := replayHashes(seg.f, seg.size, s.dec, func(hashes []uint64, loc spanLoc) error {
		if i >= seg.memRows.n || seg.memRows.at(i).rec != loc.rec || seg.memRows.at(i).off != loc.off {
			return errors.New("spans do not line up with the index rows")
		}
		th.start = append(th.start, uint32(len(th.hashes)))
		th.hashes = append(th.hashes, hashes...)
		i++
		return nil
	})
	if err != nil || i != seg.memRows.n {
		s.logger.Warn("trace store: sealed segment's index gets no attribute postings", "segment", seg.path, "err", err)
		return nil
	}
	th.start = append(th.start, uint32(len(th.hashes)))
	return th
}

// replaySegment reads a segment's records into its in-memory index,
// cutting a torn tail of the active segment and reporting damage.
func (s *Store) replaySegment(seg *segment, active bool) error {
	s.replayedSegs++
	s.replayedBytes += seg.size
	s.m.replayedBytes.Add(float64(seg.size))
	var hashes []uint64
	var cur, curFirst uint32
	res, err := replaySegment(seg.f, seg.size, s.dec, func(sp *spans.Span, loc spanLoc) error {
		if loc.rec != cur || seg.memRows.n == 0 {
			if len(hashes) > 0 {
				s.addBloom(seg, cur, curFirst, hashes)
				hashes = hashes[:0]
			}
			curFirst = uint32(seg.memRows.n)
		}
		cur = loc.rec
		hashes = appendAttrHashes(hashes, sp)
		s.index(seg, sp, loc)
		return nil
	})
	if len(hashes) > 0 {
		s.addBloom(seg, cur, curFirst, hashes)
	}
	if err != nil {
		return fmt.Errorf("trace store: replay %s: %w", seg.path, err)
	}
	if res.tail != nil && active {
		// A torn write at the end of the active segment holds no
		// acknowledged batch (the ack waits for the fsync after the
		// whole record): cut it off.
		s.logger.Warn("trace store: truncating torn segment tail", "segment", seg.path, "offset", res.end, "bytes", res.tail.n, "err", res.tail.why)
		if err := repairTail(seg.f, res.end); err != nil {
			return fmt.Errorf("trace store: repair %s: %w", seg.path, err)
		}
		seg.size = max(res.end, int64(len(segMagic)))
	} else if res.tail != nil {
		// A sealed segment was complete when the next one was created:
		// its unreadable end is damage, and the file stays as it is.
		res.damaged = append(res.damaged, *res.tail)
	}
	seg.damaged = res.damaged
	for _, d := range res.damaged {
		s.reportDamage(seg, d)
	}
	return nil
}

// reportDamage logs and counts a damaged stretch found at open.
func (s *Store) reportDamage(seg *segment, d damagedRange) {
	s.logger.Error("trace store: skipped damaged bytes; the spans they held are lost, later records are kept",
		"segment", seg.path, "offset", d.off, "bytes", d.n, "err", d.why)
	s.m.corruptRecords.Inc()
	s.m.corruptBytes.Add(float64(d.n))
}

// repairTail cuts a torn write off the active segment (restoring the magic
// when the crash came before it was written) and makes the cut durable.
func repairTail(f *os.File, end int64) error {
	if end < int64(len(segMagic)) {
		if _, err := f.WriteAt([]byte(segMagic), 0); err != nil {
			return err
		}
		end = int64(len(segMagic))
	}
	if err := f.Truncate(end); err != nil {
		return err
	}
	return f.Sync()
}

// reusable says whether the last replayed segment can stay the active one,
// so that a restart does not add a segment: it must be intact and below the
// sealing size.
func (s *Store) reusable() bool {
	if len(s.segs) == 0 {
		return false
	}
	last := s.segs[len(s.segs)-1]
	return len(last.damaged) == 0 && last.size < s.cfg.SegmentBytes
}

// index records a durable span in memory. Caller holds s.mu (or is replay).
func (s *Store) index(seg *segment, sp *spans.Span, loc spanLoc) {
	svc := s.intern(sp.Service)
	op := s.intern(sp.Name)
	m := spanMeta{
		trace: sp.TraceID, rec: loc.rec, recLen: loc.recLen, off: loc.off, length: loc.length,
		start: sp.StartUnixNano, dur: sp.EndUnixNano - sp.StartUnixNano,
		svc: svc, op: op, kind: sp.Kind, status: sp.StatusCode,
	}
	if p := sp.PeerService(); p != "" {
		id := s.intern(p)
		m.peer = id + 1
		callers := s.peers[id]
		if callers == nil {
			callers = map[uint32]struct{}{}
			s.peers[id] = callers
		}
		callers[op] = struct{}{}
	}
	if seg.byTrace == nil {
		seg.byTrace = map[spans.TraceID][]uint32{}
	}
	seg.byTrace[sp.TraceID] = append(seg.byTrace[sp.TraceID], uint32(seg.memRows.n))
	seg.note(m)
	ops := s.ops[svc]
	if ops == nil {
		ops = map[opKey]struct{}{}
		s.ops[svc] = ops
	}
	ops[opKey{op, sp.Kind}] = struct{}{}
}

// addBloom records the attribute filter of one record. Caller holds s.mu
// (or is replay).
func (s *Store) addBloom(seg *segment, rec, first uint32, hashes []uint64) {
	seg.hashCount += len(hashes)
	b := newAttrBloom(hashes)
	seg.recs = append(seg.recs, recInfo{off: rec, first: first, bloom: b})
	s.bloomBytes += int64(b.bytes())
}

func (s *Store) newSegment() error {
	var id uint32 = 1
	if len(s.segs) > 0 {
		last := s.segs[len(s.segs)-1]
		id = last.id + 1
		// The sealed segment's records no longer grow: drop append's
		// slack. Snapshots keep the old array. (Rows are chunked: no slack.)
		last.recs = slices.Clone(last.recs)
	}
	path := filepath.Join(s.cfg.Dir, segName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("trace store: create segment: %w", err)
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
		f.Close()
		return fmt.Errorf("trace store: write segment header: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	s.segs = append(s.segs, &segment{id: id, path: path, f: f, size: int64(len(segMagic)), lastData: time.Now()})
	s.totalLen += int64(len(segMagic))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("trace store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("trace store: sync %s: %w", dir, err)
	}
	return nil
}

// WriteSpans appends the batch to the WAL and returns once it is fsynced
// (group commit: concurrent batches share one fsync).
func (s *Store) WriteSpans(ctx context.Context, batch []spans.Span) error {
	if len(batch) == 0 {
		return nil
	}
	req := &writeReq{done: make(chan error, 1), offs: make([]uint32, len(batch)), lens: make([]uint32, len(batch)), order: make([]int32, len(batch)), batch: batch}
	var p []byte
	if b, ok := s.payloads.Get().(*[]byte); ok {
		p = (*b)[:0]
	} else {
		p = make([]byte, 0, 256*len(batch))
	}
	if writeSpanFormat == 1 {
		for i := range batch {
			req.offs[i], req.order[i] = uint32(len(p)), int32(i)
			p = appendSpan(p, &batch[i])
			req.lens[i] = uint32(len(p)) - req.offs[i]
		}
	} else {
		p = appendBlock(p, batch, req.offs, req.lens, req.order)
	}
	if len(p) > maxRecord {
		s.putPayload(p)
		return fmt.Errorf("trace store: batch of %d spans encodes to %d bytes, above the %d-byte record limit; split it", len(batch), len(p), maxRecord)
	}
	req.payload, req.size = p, len(p)
	s.closeMu.RLock()
	if s.closing {
		s.closeMu.RUnlock()
		s.putPayload(p)
		return errors.New("trace store: closed")
	}
	select {
	case s.writes <- req:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		s.putPayload(p)
		return ctx.Err()
	}
	// Once queued the write happens; wait for it regardless of ctx so the
	// batch slice stays valid while it is indexed.
	return <-req.done
}

// maxPooledPayload is the largest encoding buffer WriteSpans keeps for
// reuse: a request of ~1,000 realistic spans encodes to ~400 KiB, and an
// occasional huge one is left to the collector.
const maxPooledPayload = 4 << 20

func (s *Store) putPayload(p []byte) {
	if cap(p) <= maxPooledPayload {
		s.payloads.Put(&p)
	}
}

// commitBufs are the write loop's buffers, reused by every commit.
type commitBufs struct {
	raw    []byte   // the record's raw body
	rec    []byte   // the record as written
	hashes []uint64 // the record's attribute pair hashes
	bases  []int    // start of each batch in raw
}

func (s *Store) writeLoop() {
	defer s.done.Done()
	var group []*writeReq
	buf := &commitBufs{}
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
		case <-s.stop:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-s.writes:
					s.commit([]*writeReq{r}, buf)
				default:
					return
				}
			}
		}
		group = append(group[:0], first)
		size := first.size
	more:
		for size < s.cfg.GroupCommitBytes {
			select {
			case r := <-s.writes:
				group = append(group, r)
				size += r.size
			default:
				break more
			}
		}
		s.commit(group, buf)
	}
}

// commit writes a group of batches as consecutive records, fsyncs once,
// indexes them and acknowledges every waiter.
func (s *Store) commit(group []*writeReq, bufs *commitBufs) {
	s.mu.RLock()
	seg := s.segs[len(s.segs)-1]
	s.mu.RUnlock()
	if seg.size >= s.cfg.SegmentBytes {
		s.mu.Lock()
		err := s.newSegment()
		sealed := seg
		if err == nil {
			seg = s.segs[len(s.segs)-1]
		}
		s.mu.Unlock()
		if err == nil {
			s.sealing.Add(1)
			s.seals <- sealed
		}
		if err != nil {
			for _, r := range group {
				r.done <- err
			}
			return
		}
	}
	// raw = count span*: every batch of the group in one record.
	total := 0
	for _, r := range group {
		total += len(r.batch)
	}
	raw := binary.AppendUvarint(bufs.raw[:0], uint64(total))
	bases := bufs.bases[:0]
	for _, r := range group {
		bases = append(bases, len(raw))
		raw = append(raw, r.payload...)
		s.putPayload(r.payload)
		r.payload = nil
	}
	bufs.raw, bufs.bases = raw, bases
	rec := bufs.rec[:0]
	if cap(rec) < recordHeader+len(raw)/3+16 {
		rec = make([]byte, 0, recordHeader+len(raw)/3+16)
	}
	rec = append(rec, make([]byte, recordHeader)...)
	codec := byte(codecRaw)
	if s.cfg.Compression == "zstd" {
		codec = codecZstd
	}
	rec = append(rec, codec)
	rec = binary.AppendUvarint(rec, uint64(len(raw)))
	if codec == codecZstd {
		rec = s.enc.EncodeAll(raw, rec)
	} else {
		rec = append(rec, raw...)
	}
	bufs.rec = rec
	payload := rec[recordHeader:]
	var err error
	if len(payload) > maxRecord {
		err = fmt.Errorf("trace store: group of %d spans encodes to %d bytes, above the %d-byte record limit", total, len(payload), maxRecord)
	} else {
		binary.LittleEndian.PutUint32(rec, uint32(len(payload)))
		binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
		_, err = seg.f.WriteAt(rec, seg.size)
	}
	if err == nil && !s.cfg.NoSync {
		t0 := time.Now()
		err = seg.f.Sync()
		s.m.fsync.Observe(time.Since(t0).Seconds())
	}
	if err != nil {
		// The bytes may be partly on disk; the next write overwrites them
		// (size does not advance). Cut them now so that a segment sealed
		// later does not end in a stale partial record.
		_ = seg.f.Truncate(seg.size)
		err = fmt.Errorf("trace store: write %s: %w", seg.path, err)
		for _, r := range group {
			r.done <- err
		}
		return
	}
	hashes := bufs.hashes[:0]
	for _, r := range group {
		for j := range r.batch {
			hashes = appendAttrHashes(hashes, &r.batch[j])
		}
	}
	bufs.hashes = hashes
	s.mu.Lock()
	loc := spanLoc{rec: uint32(seg.size + recordHeader), recLen: uint32(len(payload))}
	s.addBloom(seg, loc.rec, uint32(seg.memRows.n), hashes)
	seg.size += int64(len(rec))
	seg.lastData = time.Now()
	s.totalLen += int64(len(rec))
	n := 0
	for i, r := range group {
		for _, j := range r.order { // record order, as a replay reads them
			loc.off = uint32(bases[i] + int(r.offs[j]))
			loc.length = r.lens[j]
			s.index(seg, &r.batch[j], loc)
		}
		n += len(r.batch)
	}
	diskBytes := s.totalLen
	s.mu.Unlock()
	s.m.bytes.Set(float64(diskBytes))
	s.m.spans.Add(float64(n))
	for _, r := range group {
		r.done <- nil
	}
}

func (s *Store) segByID(id uint32) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].id >= id })
	if i < len(s.segs) && s.segs[i].id == id {
		return s.segs[i]
	}
	return nil
}

// readSpan decodes one span, reading (and caching) its record.
func (s *Store) readSpan(seg *segment, m *spanMeta) (spans.Span, error) {
	var sp spans.Span
	raw, err := s.record(seg, m.rec, m.recLen)
	if err != nil {
		return sp, err
	}
	tables := func(pos int, tb []byte) (*blockTable, error) {
		k := tableKey{seg.id, m.rec, uint32(pos)}
		if t, ok := s.tables.get(k); ok {
			return t, nil
		}
		t, err := parseBlockTable(tb)
		if err == nil {
			s.tables.put(k, t)
		}
		return t, err
	}
	if err := decodeRecordSpan(raw, m.off, m.length, &sp, tables); err != nil {
		return sp, fmt.Errorf("trace store: decode %s@%d: %w", seg.path, m.rec, err)
	}
	return sp, nil
}

// record returns the raw body of the record at off, from the cache or disk.
func (s *Store) record(seg *segment, off, length uint32) ([]byte, error) {
	key := recordKey{seg.id, off}
	if raw, ok := s.cache.get(key); ok {
		return raw, nil
	}
	payload := make([]byte, length)
	if _, err := seg.f.ReadAt(payload, int64(off)); err != nil {
		return nil, fmt.Errorf("trace store: read %s at %d: %w", seg.path, off, err)
	}
	raw, err := decodePayload(s.dec, payload, nil)
	if err != nil {
		return nil, fmt.Errorf("trace store: record %s@%d: %w", seg.path, off, err)
	}
	s.cache.put(key, raw)
	return raw, nil
}

// traceMetas calls fn with every row of the trace, newest segment first.
// Caller holds s.mu shared.
func (s *Store) traceMetas(id spans.TraceID, fn func(seg *segment, m *spanMeta)) error {
	for i := len(s.segs) - 1; i >= 0; i-- {
		seg := s.segs[i]
		if x := seg.idx; x != nil {
			rows, err := x.traceRows(id)
			if err != nil {
				return fmt.Errorf("trace store: index of %s: %w", seg.path, err)
			}
			for _, r := range rows {
				m, err := x.rowMeta(int(r))
				if err != nil {
					return fmt.Errorf("trace store: index of %s: %w", seg.path, err)
				}
				fn(seg, &m)
			}
			continue
		}
		for _, r := range seg.byTrace[id] {
			fn(seg, seg.memRows.at(int(r)))
		}
	}
	return nil
}

// Trace returns every stored span of the trace.
func (s *Store) Trace(ctx context.Context, id spans.TraceID) ([]spans.Span, error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	type loc struct {
		seg *segment
		m   spanMeta
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, errors.New("trace store: closed")
	}
	var locs []loc
	err := s.traceMetas(id, func(seg *segment, m *spanMeta) { locs = append(locs, loc{seg, *m}) })
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if len(locs) == 0 {
		return nil, tracestore.ErrTraceNotFound
	}
	out := make([]spans.Span, 0, len(locs))
	seen := make(map[spans.SpanID]struct{}, len(locs))
	for i := range locs {
		sp, err := s.readSpan(locs[i].seg, &locs[i].m)
		if err != nil {
			return nil, err
		}
		// A client retrying an export whose acknowledgement it lost sends
		// the same span again: return each span once.
		if _, dup := seen[sp.SpanID]; dup {
			continue
		}
		seen[sp.SpanID] = struct{}{}
		out = append(out, sp)
	}
	return out, nil
}

// segView is a consistent snapshot of one segment's index: rows and records
// are append-only and a sealed segment's index file is immutable, so the
// view stays valid after the lock is released.
type segView struct {
	seg                *segment
	metas              metaRows
	recs               []recInfo
	idx                *segIndex
	minStart, maxStart int64
}

func (v *segView) empty() bool {
	if v.idx != nil {
		return v.idx.nRows == 0
	}
	return v.metas.n == 0
}

// searchCond is a query resolved against the store's names.
type searchCond struct {
	q                      tracestore.Query
	svc, op                uint32
	minT, maxT, minD, maxD int64
	want                   []uint64 // attribute pair hashes
}

// rowOK checks every condition but the attributes on one row.
func (c *searchCond) rowOK(m *spanMeta) bool {
	q := &c.q
	return !(q.Service != "" && m.svc != c.svc && m.peer != c.svc+1 ||
		q.Operation != "" && m.op != c.op ||
		m.start < c.minT || m.start > c.maxT ||
		m.dur < c.minD || m.dur > c.maxD ||
		q.Status == tracestore.StatusError && m.status != spans.StatusError ||
		q.Status == tracestore.StatusOK && m.status == spans.StatusError)
}

// searchState collects the matching traces of a search with the start of
// each one's earliest matching span, and (newest first) the best limit.
type searchState struct {
	found map[spans.TraceID]int64
	best  []tracestore.TraceRef // the best ≤ limit of found, best first
	limit int
}

// better orders search hits: later start first, then trace id.
func better(aStart int64, a spans.TraceID, bStart int64, b spans.TraceID) bool {
	return aStart > bStart || aStart == bStart && bytes.Compare(a[:], b[:]) < 0
}

// note records a matching trace's earliest matching start.
func (st *searchState) note(id spans.TraceID, start int64) {
	if prev, ok := st.found[id]; ok && prev <= start {
		return
	}
	_, had := st.found[id]
	st.found[id] = start
	if had {
		st.rebuild() // its key went down: it may leave the best
		return
	}
	if len(st.best) == st.limit {
		w := st.best[len(st.best)-1]
		if !better(start, id, w.Start.UnixNano(), w.TraceID) {
			return
		}
		st.best = st.best[:len(st.best)-1]
	}
	i := sort.Search(len(st.best), func(i int) bool {
		return better(start, id, st.best[i].Start.UnixNano(), st.best[i].TraceID)
	})
	st.best = slices.Insert(st.best, i, tracestore.TraceRef{TraceID: id, Start: time.Unix(0, start)})
}

func (st *searchState) rebuild() {
	st.best = st.best[:0]
	for id, start := range st.found {
		st.best = append(st.best, tracestore.TraceRef{TraceID: id, Start: time.Unix(0, start)})
	}
	slices.SortFunc(st.best, func(a, b tracestore.TraceRef) int {
		if better(a.Start.UnixNano(), a.TraceID, b.Start.UnixNano(), b.TraceID) {
			return -1
		}
		return 1
	})
	st.best = st.best[:min(len(st.best), st.limit)]
}

// full says whether limit traces were found.
func (st *searchState) full() bool { return len(st.best) >= st.limit }

// Search answers from each segment's index, newest segment first: the
// active segment's rows in memory, a sealed segment's index file. See
// docs/format/traces.md.
func (s *Store) Search(ctx context.Context, q tracestore.Query) ([]tracestore.TraceRef, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = tracestore.DefaultSearchLimit
	}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, errors.New("trace store: closed")
	}
	svc, svcOK := s.nameIDs[q.Service]
	op, opOK := s.nameIDs[q.Operation]
	views := make([]segView, len(s.segs))
	for i, seg := range s.segs {
		views[i] = segView{seg, seg.memRows, seg.recs, seg.idx, seg.minStart, seg.maxStart}
	}
	s.mu.RUnlock()
	if q.Service != "" && !svcOK || q.Operation != "" && !opOK {
		return nil, nil
	}
	c := &searchCond{q: q, svc: svc, op: op, minT: -1 << 63, maxT: 1<<63 - 1, minD: int64(q.MinDuration), maxD: int64(q.MaxDuration)}
	if !q.Start.IsZero() {
		c.minT = q.Start.UnixNano()
	}
	if !q.End.IsZero() {
		c.maxT = q.End.UnixNano()
	}
	if c.maxD == 0 {
		c.maxD = 1<<63 - 1
	}
	for k, v := range q.Attrs {
		c.want = append(c.want, attrHash(k, v))
	}
	st := &searchState{found: map[spans.TraceID]int64{}, limit: limit}
	for i := len(views) - 1; i >= 0; i-- {
		v := &views[i]
		if v.empty() || v.maxStart < c.minT || v.minStart > c.maxT {
			continue
		}
		var err error
		if v.idx != nil {
			err = s.searchIndex(ctx, v, c, st)
		} else {
			err = s.searchMem(ctx, v, c, st)
		}
		if err != nil {
			return nil, err
		}
		// Segments are in ingest order, which is close to time order: once
		// limit traces were found and no older segment has a span starting
		// at or after the limit-th of them, the rest cannot enter the result.
		if q.Sort == tracestore.SortNewest && i > 0 && st.full() {
			var older int64 = -1 << 63
			for _, o := range views[:i] {
				if !o.empty() && o.maxStart > older {
					older = o.maxStart
				}
			}
			if older < st.best[limit-1].Start.UnixNano() {
				break
			}
		}
	}
	var refs []tracestore.TraceRef
	if q.Sort == tracestore.SortNewest {
		refs = st.best
	} else {
		refs = make([]tracestore.TraceRef, 0, len(st.found))
		for id, start := range st.found {
			refs = append(refs, tracestore.TraceRef{TraceID: id, Start: time.Unix(0, start)})
		}
		keys, err := s.traceSortKeys(refs, q.Sort) // sort key per trace, larger first
		if err != nil {
			return nil, err
		}
		slices.SortFunc(refs, func(a, b tracestore.TraceRef) int {
			if c := cmp.Compare(keys[b.TraceID], keys[a.TraceID]); c != 0 {
				return c
			}
			if c := b.Start.Compare(a.Start); c != 0 {
				return c
			}
			return slices.Compare(a.TraceID[:], b.TraceID[:])
		})
		if len(refs) > limit {
			refs = refs[:limit]
		}
	}
	return refs, nil
}

// searchMem scans the in-memory rows of the active segment (or of a sealed
// one whose index file could not be written), newest record last.
func (s *Store) searchMem(ctx context.Context, v *segView, c *searchCond, st *searchState) error {
	if c.q.Sort == tracestore.SortNewest && len(st.found) == 0 {
		return s.searchMemNewest(ctx, v, c, st)
	}
	ri := len(v.recs) - 1 // rows are in record order: walk records down with them
	checkedRI := -1
	checked := 0
	for j := v.metas.n - 1; j >= 0; j-- {
		m := v.metas.at(j)
		if len(c.want) > 0 {
			for ri > 0 && v.recs[ri].off > m.rec {
				ri--
			}
			if ri >= 0 && ri != checkedRI && v.recs[ri].off == m.rec && !bloomHasAll(v.recs[ri].bloom, c.want) {
				// No span of this record has every pair: skip its rows.
				j = int(v.recs[ri].first)
				continue
			}
			checkedRI = ri
		}
		if !c.rowOK(m) {
			continue
		}
		if prev, ok := st.found[m.trace]; ok && prev <= m.start {
			continue
		}
		if len(c.want) > 0 {
			if checked++; checked%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			sp, err := s.readSpan(v.seg, m)
			if err != nil {
				return err
			}
			if !matchAttrs(&sp, c.q.Attrs) {
				continue
			}
		}
		st.found[m.trace] = m.start
	}
	st.rebuild()
	return nil
}

// searchMemNewest answers a newest-first search from the in-memory rows
// of the newest segment searched: the rows passing every condition but the
// attributes are heap-ordered by (start descending, trace id) and popped
// until limit traces rank before the next row, so only the spans popped
// are decoded for attribute conditions.
func (s *Store) searchMemNewest(ctx context.Context, v *segView, c *searchCond, st *searchState) error {
	h := &rowHeap{metas: v.metas}
	ri := len(v.recs) - 1 // rows are in record order: walk records down with them
	checkedRI := -1
	for j := v.metas.n - 1; j >= 0; j-- {
		m := v.metas.at(j)
		if len(c.want) > 0 {
			for ri > 0 && v.recs[ri].off > m.rec {
				ri--
			}
			if ri >= 0 && ri != checkedRI && v.recs[ri].off == m.rec && !bloomHasAll(v.recs[ri].bloom, c.want) {
				j = int(v.recs[ri].first) // no span of this record has every pair
				continue
			}
			checkedRI = ri
		}
		if c.rowOK(m) {
			h.rows = append(h.rows, uint32(j))
		}
	}
	h.init()
	matches := func(m *spanMeta) (bool, error) {
		if len(c.want) == 0 {
			return true, nil
		}
		sp, err := s.readSpan(v.seg, m)
		if err != nil {
			return false, err
		}
		return matchAttrs(&sp, c.q.Attrs), nil
	}
	checked := 0
	for len(h.rows) > 0 {
		m := v.metas.at(int(h.rows[0]))
		if st.full() {
			w := st.best[st.limit-1]
			if better(w.Start.UnixNano(), w.TraceID, m.start, m.trace) {
				// The best traces may have earlier matching spans among
				// the rows not popped: take them into account, then decide.
				best := map[spans.TraceID]bool{}
				for _, b := range st.best {
					best[b.TraceID] = true
				}
				for _, j := range h.rows {
					m := v.metas.at(int(j))
					if best[m.trace] && m.start < st.found[m.trace] {
						ok, err := matches(m)
						if err != nil {
							return err
						}
						if ok {
							st.note(m.trace, m.start)
						}
					}
				}
				w = st.best[st.limit-1]
				if better(w.Start.UnixNano(), w.TraceID, m.start, m.trace) {
					return nil
				}
			}
		}
		h.pop()
		if prev, ok := st.found[m.trace]; ok && prev <= m.start {
			continue
		}
		if checked++; checked%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		ok, err := matches(m)
		if err != nil {
			return err
		}
		if ok {
			st.note(m.trace, m.start)
		}
	}
	return nil
}

// rowHeap is a binary heap of row numbers, best-ranked (latest start, then
// smallest trace id) on top.
type rowHeap struct {
	metas metaRows
	rows  []uint32
}

func (h *rowHeap) less(i, j int) bool {
	a, b := h.metas.at(int(h.rows[i])), h.metas.at(int(h.rows[j]))
	if a.start != b.start || a.trace != b.trace {
		return better(a.start, a.trace, b.start, b.trace)
	}
	return h.rows[i] < h.rows[j]
}

func (h *rowHeap) init() {
	for i := len(h.rows)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *rowHeap) pop() {
	n := len(h.rows) - 1
	h.rows[0] = h.rows[n]
	h.rows = h.rows[:n]
	h.down(0)
}

func (h *rowHeap) down(i int) {
	n := len(h.rows)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			return
		}
		h.rows[i], h.rows[j] = h.rows[j], h.rows[i]
		i = j
	}
}

// rowIter walks ascending row numbers from row lo on: the union of up to
// two posting lists (or every row), restricted to rows present in every
// list of and (attribute buckets).
type rowIter struct {
	lists [2][]uint32
	n     int // lists in use; 0 = every row
	pos   [2]int
	next  int // every-row mode
	rows  int
	and   [][]uint32
	apos  []int
}

func newRowIter(x *segIndex, lo int, and [][]uint32, lists ...[]uint32) *rowIter {
	it := &rowIter{n: len(lists), next: lo, rows: x.nRows, and: and, apos: make([]int, len(and))}
	from := func(l []uint32) int { i, _ := slices.BinarySearch(l, uint32(lo)); return i }
	for i, l := range lists {
		it.lists[i] = l
		it.pos[i] = from(l)
	}
	for i, l := range and {
		it.apos[i] = from(l)
	}
	return it
}

// row returns the next row, or -1.
func (it *rowIter) row() int {
	for {
		r := it.base()
		if r < 0 {
			return -1
		}
		in := true
		for i, l := range it.and {
			for it.apos[i] < len(l) && int(l[it.apos[i]]) < r {
				it.apos[i]++
			}
			if it.apos[i] == len(l) {
				return -1 // no row after this one is in every list
			}
			in = in && int(l[it.apos[i]]) == r
		}
		if in {
			return r
		}
	}
}

func (it *rowIter) base() int {
	if it.n == 0 {
		if it.next >= it.rows {
			return -1
		}
		it.next++
		return it.next - 1
	}
	best := -1
	for i := range it.n {
		if it.pos[i] < len(it.lists[i]) {
			if r := int(it.lists[i][it.pos[i]]); best < 0 || r < best {
				best = r
			}
		}
	}
	if best < 0 {
		return -1
	}
	for i := range it.n { // a row in both lists comes once
		if it.pos[i] < len(it.lists[i]) && int(it.lists[i][it.pos[i]]) == best {
			it.pos[i]++
		}
	}
	return best
}

// tagRows holds a search's attribute bucket lists in one index: a row not
// in each of them holds not every wanted pair.
type tagRows [][]uint32

func (t tagRows) may(r uint32) bool {
	for _, l := range t {
		if _, ok := slices.BinarySearch(l, r); !ok {
			return false
		}
	}
	return true
}

// searchIndex searches a sealed segment's index file. Rows are sorted by
// start descending then trace id, so (newest first) the walk stops as soon
// as limit traces that rank before the current row were found; posting
// lists narrow it to the service (and operation) and the peer service; the
// attribute buckets of the wanted pairs (but the dense ones) narrow it to
// the rows that may hold them, and the spans left are decoded to check.
func (s *Store) searchIndex(ctx context.Context, v *segView, c *searchCond, st *searchState) error {
	x := v.idx
	wrap := func(err error) error { return fmt.Errorf("trace store: index of %s: %w", v.seg.path, err) }
	var lists [][]uint32
	// Attribute conditions: the shortest bucket list drives the walk, the
	// others filter it; service lists are then left to the row check (and
	// not read: a hot service's list is most of the segment's rows).
	var tags tagRows
	if len(c.want) > 0 && x.nBuckets > 0 {
		for _, h := range c.want {
			l, dense, err := x.tagList(h)
			if err != nil {
				return wrap(err)
			}
			if dense {
				continue
			}
			if len(l) == 0 {
				return nil
			}
			tags = append(tags, l)
		}
	}
	if c.q.Service != "" {
		l, ok := x.local[c.svc]
		if !ok {
			return nil
		}
		switch {
		case len(tags) > 0:
		case c.q.Operation != "":
			if lop, ok := x.local[c.op]; ok {
				pl, err := x.postingList(postOperation, l, lop)
				if err != nil {
					return wrap(err)
				}
				lists = append(lists, pl)
			}
		default:
			pl, err := x.postingList(postService, l, 0)
			if err != nil {
				return wrap(err)
			}
			lists = append(lists, pl)
		}
		if len(tags) == 0 {
			pl, err := x.postingList(postPeer, l, 0)
			if err != nil {
				return wrap(err)
			}
			lists = append(lists, pl)
		}
	}
	var and [][]uint32
	if len(tags) > 0 {
		and = slices.SortedFunc(slices.Values(tags), func(a, b []uint32) int { return cmp.Compare(len(a), len(b)) })
		lists = [][]uint32{and[0]}
		and = and[1:]
	}
	newest := c.q.Sort == tracestore.SortNewest
	refined := map[spans.TraceID]struct{}{} // traces whose rows here were all checked
	checked := 0
	lo, err := x.firstAtOrBefore(c.maxT)
	if err != nil {
		return wrap(err)
	}
	it := newRowIter(x, lo, and, lists...)
	for r := it.row(); r >= 0; r = it.row() {
		start, _, err := x.rowKey(r)
		if err != nil {
			return wrap(err)
		}
		if start < c.minT {
			break
		}
		if newest && st.full() {
			id, err := x.rowTraceID(r)
			if err != nil {
				return wrap(err)
			}
			w := st.best[st.limit-1]
			if better(w.Start.UnixNano(), w.TraceID, start, id) {
				// Every trace not seen yet ranks after this row. The best
				// ones found in newer segments may have earlier matching
				// spans here: take them into account, then decide.
				if err := s.refineBest(x, v.seg, c, st, tags, refined); err != nil {
					return err
				}
				w = st.best[st.limit-1]
				if better(w.Start.UnixNano(), w.TraceID, start, id) {
					break
				}
			}
		}
		m, err := x.rowMeta(r)
		if err != nil {
			return wrap(err)
		}
		if !c.rowOK(&m) {
			continue
		}
		if _, done := refined[m.trace]; done {
			continue
		}
		if checked++; checked%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.refineTrace(x, v.seg, c, st, tags, m.trace); err != nil {
			return err
		}
		refined[m.trace] = struct{}{}
	}
	return nil
}

// refineBest takes into account this segment's rows of the best traces
// found so far.
func (s *Store) refineBest(x *segIndex, seg *segment, c *searchCond, st *searchState, tags tagRows, refined map[spans.TraceID]struct{}) error {
	for _, b := range slices.Clone(st.best) {
		if _, done := refined[b.TraceID]; done {
			continue
		}
		refined[b.TraceID] = struct{}{}
		if err := s.refineTrace(x, seg, c, st, tags, b.TraceID); err != nil {
			return err
		}
	}
	return nil
}

// refineTrace notes the earliest matching span of one trace in a segment.
func (s *Store) refineTrace(x *segIndex, seg *segment, c *searchCond, st *searchState, tags tagRows, id spans.TraceID) error {
	var earliest int64
	found := false
	rows, err := x.traceRows(id)
	if err != nil {
		return fmt.Errorf("trace store: index of %s: %w", seg.path, err)
	}
	for _, r := range rows {
		if !tags.may(r) {
			continue
		}
		m, err := x.rowMeta(int(r))
		if err != nil {
			return fmt.Errorf("trace store: index of %s: %w", seg.path, err)
		}
		if !c.rowOK(&m) || found && m.start >= earliest {
			continue
		}
		if len(c.want) > 0 {
			sp, err := s.readSpan(seg, &m)
			if err != nil {
				return err
			}
			if !matchAttrs(&sp, c.q.Attrs) {
				continue
			}
		}
		earliest, found = m.start, true
	}
	if found {
		st.note(id, earliest)
	}
	return nil
}

// traceSortKeys computes, over all stored spans of each trace, its duration
// (SortLongest) or its number of error spans (SortErrors; a span stored
// twice by a retried export counts once). Caller holds s.readMu shared.
func (s *Store) traceSortKeys(refs []tracestore.TraceRef, o tracestore.SortOrder) (map[spans.TraceID]int64, error) {
	type spanKey struct {
		start, dur int64
		svc, op    uint32
	}
	keys := make(map[spans.TraceID]int64, len(refs))
	seen := map[spanKey]struct{}{}
	for i, r := range refs {
		// Lock in chunks: a sort over many traces must not stall ingest.
		if i%4096 == 0 {
			if i > 0 {
				s.mu.RUnlock()
			}
			s.mu.RLock()
		}
		var lo, hi, errs int64 = 1<<63 - 1, -1 << 63, 0
		clear(seen)
		err := s.traceMetas(r.TraceID, func(_ *segment, m *spanMeta) {
			lo, hi = min(lo, m.start), max(hi, m.start+m.dur)
			if m.status == spans.StatusError {
				k := spanKey{m.start, m.dur, m.svc, m.op}
				if _, dup := seen[k]; !dup {
					seen[k] = struct{}{}
					errs++
				}
			}
		})
		if err != nil {
			s.mu.RUnlock()
			return nil, err
		}
		if o == tracestore.SortErrors {
			keys[r.TraceID] = errs
		} else if hi >= lo {
			keys[r.TraceID] = hi - lo
		}
	}
	if len(refs) > 0 {
		s.mu.RUnlock()
	}
	return keys, nil
}

func bloomHasAll(b *attrBloom, hashes []uint64) bool {
	for _, h := range hashes {
		if !b.mayContain(h) {
			return false
		}
	}
	return true
}

func matchAttrs(sp *spans.Span, want map[string]string) bool {
	for k, v := range want {
		a, ok := sp.Attr(k)
		if !ok || a.String() != v {
			return false
		}
	}
	return true
}

// Services lists every service with stored spans and every peer service
// of CLIENT spans.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	infos, err := s.ServiceInfos(ctx)
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out, err
}

// ServiceInfos lists the services as Services does, marking those known only
// as the peer of CLIENT spans.
func (s *Store) ServiceInfos(ctx context.Context) ([]tracestore.ServiceInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]tracestore.ServiceInfo, 0, len(s.ops)+len(s.peers))
	for id := range s.ops {
		out = append(out, tracestore.ServiceInfo{Name: s.names[id]})
	}
	for id := range s.peers {
		if _, own := s.ops[id]; !own {
			out = append(out, tracestore.ServiceInfo{Name: s.names[id], Unmeshed: true})
		}
	}
	slices.SortFunc(out, func(a, b tracestore.ServiceInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Operations lists a service's operations.
func (s *Store) Operations(ctx context.Context, q tracestore.OperationQuery) ([]tracestore.Operation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.nameIDs[q.Service]
	if !ok {
		return nil, nil
	}
	var out []tracestore.Operation
	for k := range s.ops[id] {
		if q.Kind != nil && *q.Kind != k.kind {
			continue
		}
		out = append(out, tracestore.Operation{Name: s.names[k.op], Kind: k.kind})
	}
	if _, own := s.ops[id]; !own && (q.Kind == nil || *q.Kind == spans.KindClient) {
		// A service without spans of its own: the CLIENT spans calling it.
		for op := range s.peers[id] {
			out = append(out, tracestore.Operation{Name: s.names[op], Kind: spans.KindClient})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}

func (s *Store) retentionLoop() {
	defer s.done.Done()
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.ApplyRetention(time.Now()); err != nil {
				s.logger.Error("trace store: retention", "err", err)
			}
		}
	}
}

// ApplyRetention deletes sealed segments older than the retention or
// beyond the size cap (oldest first). The active segment is never deleted.
func (s *Store) ApplyRetention(now time.Time) error {
	s.mu.RLock()
	due := len(s.segs) > 1 && (now.Sub(s.segs[0].lastData) > s.cfg.Retention || s.totalLen > s.cfg.MaxBytes)
	s.mu.RUnlock()
	if !due {
		return nil
	}
	s.readMu.Lock() // wait for queries reading the files about to go
	defer s.readMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var errs []error
	for len(s.segs) > 1 {
		seg := s.segs[0]
		tooOld := now.Sub(seg.lastData) > s.cfg.Retention
		tooBig := s.totalLen > s.cfg.MaxBytes
		if !tooOld && !tooBig {
			break
		}
		seg.f.Close()
		s.cache.dropSegment(seg.id)
		s.tables.dropSegment(seg.id)
		// The segment first, then its index: a crash in between leaves a
		// stray index, which the next open deletes.
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("trace store: delete %s: %w", seg.path, err))
		}
		if seg.idx != nil {
			seg.idx.close()
		}
		if err := os.Remove(filepath.Join(s.cfg.Dir, idxName(seg.id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("trace store: delete index of %s: %w", seg.path, err))
		}
		s.totalLen -= seg.size + seg.idxSize
		for _, r := range seg.recs {
			s.bloomBytes -= int64(r.bloom.bytes())
		}
		s.m.spans.Sub(float64(seg.rows()))
		reason := "age"
		if !tooOld {
			reason = "size"
		}
		s.m.deleted.WithLabelValues(reason).Inc()
		s.logger.Debug("trace store: deleted segment", "segment", seg.path, "reason", reason)
		s.segs = s.segs[1:]
	}
	s.m.bytes.Set(float64(s.totalLen))
	return errors.Join(errs...)
}

// DiskBytes is the size of every segment file.
func (s *Store) DiskBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.totalLen
}

// Close waits for queued writes, syncs and closes the files.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closing {
		s.closeMu.Unlock()
		return nil
	}
	s.closing = true
	s.closeMu.Unlock()
	close(s.stop)
	s.done.Wait()
	close(s.seals) // the write loop has ended: seal what it handed over
	s.sealsDone.Wait()
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.closeFiles()
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, seg := range s.segs {
		if err := seg.f.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := seg.f.Close(); err != nil {
			errs = append(errs, err)
		}
		if seg.idx != nil {
			if err := seg.idx.close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

var _ tracestore.Store = (*Store)(nil)

// ConsumeSpans makes the store a pipeline sink (consumer.Spans): it is
// WriteSpans.
func (s *Store) ConsumeSpans(ctx context.Context, batch []spans.Span) error {
	return s.WriteSpans(ctx, batch)
}

// maxDamageWhere bounds Damage.Where.
const maxDamageWhere = 5

// Damage reports the damaged stretches skipped when the store opened, in
// segments still retained (retention drops a damaged segment's report with
// the segment).
func (s *Store) Damage() tracestore.Damage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var d tracestore.Damage
	for _, seg := range s.segs {
		for _, r := range seg.damaged {
			d.Regions++
			d.Bytes += r.n
			if len(d.Where) < maxDamageWhere {
				d.Where = append(d.Where, fmt.Sprintf("%s@%d+%d", filepath.Base(seg.path), r.off, r.n))
			}
		}
	}
	return d
}
