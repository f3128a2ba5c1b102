package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// indexCorpus is adversarial search data: one hot service, most spans of a
// trace sharing one start time and many traces sharing each start time, a
// unique request id per span, a rare status, CLIENT spans with peers.
func indexCorpus(traces int) []spans.Span {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	var out []spans.Span
	for i := range traces {
		var id spans.TraceID
		id[0], id[1], id[2], id[15] = 0x7a, byte(i*37>>8), byte(i*37), byte(i)
		st := base + int64(i/50)*int64(time.Millisecond) // 50 traces per start time
		svc := "hot"
		if i%5 == 4 {
			svc = fmt.Sprintf("cold-%d", i%3)
		}
		for j := range 4 {
			sp := spans.Span{TraceID: id, SpanID: spans.SpanID{byte(j + 1), byte(i), byte(i >> 8)}, Service: svc,
				Name: fmt.Sprintf("op-%d", (i+j)%4), Kind: spans.KindServer, StartUnixNano: st, EndUnixNano: st + int64(1+(i*3+j)%100)*int64(time.Millisecond),
				Attrs: []spans.Attr{spans.StringAttr("request.id", fmt.Sprintf("r-%d-%d", i, j)), spans.IntAttr("http.status_code", int64(200+300*btoi(i%97 == 0))),
					spans.StringAttr("tenant", fmt.Sprintf("t%d", i%7))},
				Resource: []spans.Attr{spans.StringAttr("host.name", fmt.Sprintf("n%d", i%3))}}
			if j == 3 {
				sp.StartUnixNano -= int64(time.Second) // one span of each trace starts earlier
				sp.Kind = spans.KindClient
				sp.Attrs = append(sp.Attrs, spans.StringAttr("peer.service", fmt.Sprintf("db-%d", i%2)))
			}
			if (i+j)%11 == 0 {
				sp.StatusCode = spans.StatusError
			}
			out = append(out, sp)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expectSearch evaluates a newest-first query by brute force: the limit
// traces with the latest earliest-matching-span start, ties by trace id.
func expectSearch(data []spans.Span, q tracestore.Query) []tracestore.TraceRef {
	earliest := map[spans.TraceID]int64{}
	for i := range data {
		sp := &data[i]
		dur := time.Duration(sp.EndUnixNano - sp.StartUnixNano)
		if q.Service != "" && sp.Service != q.Service && sp.PeerService() != q.Service ||
			q.Operation != "" && sp.Name != q.Operation ||
			dur < q.MinDuration || q.MaxDuration != 0 && dur > q.MaxDuration ||
			!q.Start.IsZero() && sp.StartUnixNano < q.Start.UnixNano() || !q.End.IsZero() && sp.StartUnixNano > q.End.UnixNano() ||
			q.Status == tracestore.StatusError && sp.StatusCode != spans.StatusError ||
			q.Status == tracestore.StatusOK && sp.StatusCode == spans.StatusError ||
			!matchAttrs(sp, q.Attrs) {
			continue
		}
		if e, ok := earliest[sp.TraceID]; !ok || sp.StartUnixNano < e {
			earliest[sp.TraceID] = sp.StartUnixNano
		}
	}
	var out []tracestore.TraceRef
	for id, st := range earliest {
		out = append(out, tracestore.TraceRef{TraceID: id, Start: time.Unix(0, st)})
	}
	slices.SortFunc(out, func(a, b tracestore.TraceRef) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return bytes.Compare(a.TraceID[:], b.TraceID[:])
	})
	limit := q.Limit
	if limit == 0 {
		limit = tracestore.DefaultSearchLimit
	}
	return out[:min(len(out), limit)]
}

func writeAll(t *testing.T, s *Store, data []spans.Span, batch int) {
	t.Helper()
	for i := 0; i < len(data); i += batch {
		if err := s.WriteSpans(context.Background(), data[i:min(i+batch, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
}

// sealActive seals the active segment as the write loop does when it is
// full (no write may be in flight).
func sealActive(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	old := s.segs[len(s.segs)-1]
	err := s.newSegment()
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.sealIndex(old)
	if old.idx == nil {
		t.Fatal("sealed segment has no index file")
	}
}

func indexQueries(data []spans.Span) []struct {
	name string
	q    tracestore.Query
} {
	base := time.Unix(0, data[0].StartUnixNano)
	return []struct {
		name string
		q    tracestore.Query
	}{
		{"all", tracestore.Query{}},
		{"hot service", tracestore.Query{Service: "hot"}},
		{"cold service", tracestore.Query{Service: "cold-1", Limit: 7}},
		{"service and operation", tracestore.Query{Service: "hot", Operation: "op-2"}},
		{"peer service", tracestore.Query{Service: "db-1"}},
		{"peer service and operation", tracestore.Query{Service: "db-0", Operation: "op-1"}},
		{"operation alone", tracestore.Query{Operation: "op-3", Limit: 30}},
		{"unique tag", tracestore.Query{Attrs: map[string]string{"request.id": "r-1234-2"}}},
		{"rare tag", tracestore.Query{Attrs: map[string]string{"http.status_code": "500"}}},
		{"common tag and service", tracestore.Query{Service: "hot", Attrs: map[string]string{"tenant": "t3", "host.name": "n1"}}},
		{"tag on peer span", tracestore.Query{Attrs: map[string]string{"peer.service": "db-0"}, Limit: 50}},
		{"min duration", tracestore.Query{Service: "hot", MinDuration: 95 * time.Millisecond}},
		{"duration range", tracestore.Query{MinDuration: 10 * time.Millisecond, MaxDuration: 12 * time.Millisecond}},
		{"errors", tracestore.Query{Status: tracestore.StatusError}},
		{"ok only", tracestore.Query{Service: "cold-2", Status: tracestore.StatusOK}},
		{"time range", tracestore.Query{Start: base.Add(10 * time.Millisecond), End: base.Add(20 * time.Millisecond)}},
		{"time range before the main spans", tracestore.Query{Service: "hot", End: base.Add(-500 * time.Millisecond), Limit: 25}},
		{"no match", tracestore.Query{Service: "hot", Attrs: map[string]string{"tenant": "nobody"}}},
		{"unknown service", tracestore.Query{Service: "nope"}},
		{"large limit", tracestore.Query{Service: "hot", Limit: 5000}},
	}
}

// Searches answer the same from the active segment's in-memory index and
// from the sealed segment's index file, and both agree with a brute-force
// evaluation of the data.
func TestSearchSameFromMemoryAndIndexFile(t *testing.T) {
	ctx := context.Background()
	data := indexCorpus(3000)
	s, err := New(Config{Dir: t.TempDir(), NoSync: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeAll(t, s, data, 300)
	queries := indexQueries(data)
	mem := make([][]tracestore.TraceRef, len(queries))
	for i, tc := range queries {
		if mem[i], err = s.Search(ctx, tc.q); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	sealActive(t, s)
	for i, tc := range queries {
		t.Run(tc.name, func(t *testing.T) {
			want := expectSearch(data, tc.q)
			if !refsEqual(mem[i], want) {
				t.Errorf("in-memory index: %d refs, want %d\n got %v\nwant %v", len(mem[i]), len(want), short(mem[i]), short(want))
			}
			got, err := s.Search(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if !refsEqual(got, want) {
				t.Errorf("index file: %d refs, want %d\n got %v\nwant %v", len(got), len(want), short(got), short(want))
			}
		})
	}
	// Sorted searches aggregate every match: same answer both ways.
	for _, o := range []tracestore.SortOrder{tracestore.SortLongest, tracestore.SortErrors} {
		q := tracestore.Query{Service: "hot", Sort: o, Limit: 30}
		got, err := s.Search(ctx, q)
		if err != nil || len(got) != 30 {
			t.Fatalf("sort %v: %d refs, %v", o, len(got), err)
		}
	}
}

func refsEqual(a, b []tracestore.TraceRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].TraceID != b[i].TraceID || !a[i].Start.Equal(b[i].Start) {
			return false
		}
	}
	return true
}

func short(r []tracestore.TraceRef) []string {
	var out []string
	for i := range min(len(r), 5) {
		out = append(out, fmt.Sprintf("%x@%d", r[i].TraceID[:3], r[i].Start.UnixNano()%1e12))
	}
	return out
}

// Every span starting at the same instant (a hot service's burst): a
// limit-20 search returns the 20 smallest trace ids, from memory and from
// the index file, and the index walk stops after them.
func TestSameStartTimeLimit(t *testing.T) {
	ctx := context.Background()
	st := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var data []spans.Span
	for i := range 20000 {
		var id spans.TraceID
		binary.BigEndian.PutUint32(id[:], uint32(i*2654435761))
		data = append(data, spans.Span{TraceID: id, SpanID: spans.SpanID{1}, Service: "hot", Name: "GET", StartUnixNano: st, EndUnixNano: st + 1000,
			Attrs: []spans.Attr{spans.StringAttr("request.id", fmt.Sprint(i))}})
	}
	s, err := New(Config{Dir: t.TempDir(), NoSync: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeAll(t, s, data, 1000)
	for _, where := range []string{"memory", "index file"} {
		if where == "index file" {
			sealActive(t, s)
		}
		for _, q := range []tracestore.Query{{Service: "hot", Limit: 20}, {Limit: 20}, {Service: "hot", Operation: "GET", Limit: 20}} {
			got, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if want := expectSearch(data, q); !refsEqual(got, want) {
				t.Errorf("%s %+v: got %v, want %v", where, q, short(got), short(want))
			}
		}
	}
}

// A restart opens sealed segments through their index files: only the
// active segment is replayed, and everything reads as before.
func TestIndexReusedAtRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1 << 18, Compression: "none"}
	s, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := indexCorpus(6000) // several 256 KiB segments uncompressed
	writeAll(t, s, data, 400)
	queries := indexQueries(data)
	before := searchAll(t, s, queries)
	svcs, _ := s.Services(ctx)
	ops, _ := s.Operations(ctx, tracestore.OperationQuery{Service: "db-1"})
	s.Close()
	ids, _ := listSegments(dir)
	if len(ids) < 3 {
		t.Fatalf("%d segments, want at least 3", len(ids))
	}
	for _, id := range ids[:len(ids)-1] {
		if _, err := os.Stat(filepath.Join(dir, idxName(id))); err != nil {
			t.Fatalf("sealed segment %d has no index file: %v", id, err)
		}
	}
	reg := prometheus.NewRegistry()
	s, err = New(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last, _ := os.Stat(filepath.Join(dir, segName(ids[len(ids)-1])))
	if s.replayedSegs != 1 || s.replayedBytes != last.Size() {
		t.Errorf("replayed %d segments, %d bytes; want only the active one (%d bytes)", s.replayedSegs, s.replayedBytes, last.Size())
	}
	if got := testutil.ToFloat64(s.m.replayedBytes); int64(got) != last.Size() {
		t.Errorf("replayed bytes metric %v, want %d", got, last.Size())
	}
	for _, seg := range s.segs[:len(s.segs)-1] {
		if seg.idx == nil || seg.memRows.n != 0 {
			t.Errorf("sealed segment %d holds an in-memory index", seg.id)
		}
	}
	if after := searchAll(t, s, queries); !reflect.DeepEqual(before, after) {
		t.Error("search results changed across the restart")
	}
	for i, tc := range queries {
		if want := expectSearch(data, tc.q); !refsEqual(before[i], want) {
			t.Errorf("%s: got %v, want %v", tc.name, short(before[i]), short(want))
		}
	}
	if got, _ := s.Services(ctx); !reflect.DeepEqual(got, svcs) {
		t.Errorf("services %v, before restart %v", got, svcs)
	}
	if got, _ := s.Operations(ctx, tracestore.OperationQuery{Service: "db-1"}); !reflect.DeepEqual(got, ops) {
		t.Errorf("peer operations %v, before restart %v", got, ops)
	}
	for _, i := range []int{0, 1, 2999, 5999} {
		got, err := s.Trace(ctx, data[i*4].TraceID)
		if err != nil || len(got) != 4 {
			t.Errorf("trace %d: %d spans, %v", i, len(got), err)
		}
	}
}

func searchAll(t *testing.T, s *Store, queries []struct {
	name string
	q    tracestore.Query
}) [][]tracestore.TraceRef {
	t.Helper()
	out := make([][]tracestore.TraceRef, len(queries))
	for i, tc := range queries {
		r, err := s.Search(context.Background(), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out[i] = r
	}
	return out
}

// A missing, damaged or foreign index file is rebuilt from its segment
// (that segment only is replayed) and reads stay complete.
func TestDamagedIndexRebuilt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, ids []uint32)
	}{
		{"missing", func(t *testing.T, dir string, ids []uint32) { os.Remove(filepath.Join(dir, idxName(ids[0]))) }},
		{"flipped byte", func(t *testing.T, dir string, ids []uint32) { flipByte(t, filepath.Join(dir, idxName(ids[0])), 0.5) }},
		{"flipped header", func(t *testing.T, dir string, ids []uint32) { flipByte(t, filepath.Join(dir, idxName(ids[0])), 0) }},
		{"truncated", func(t *testing.T, dir string, ids []uint32) {
			p := filepath.Join(dir, idxName(ids[0]))
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()/2)
		}},
		{"empty", func(t *testing.T, dir string, ids []uint32) { os.Truncate(filepath.Join(dir, idxName(ids[0])), 0) }},
		{"another segment's index", func(t *testing.T, dir string, ids []uint32) {
			b, _ := os.ReadFile(filepath.Join(dir, idxName(ids[1])))
			os.WriteFile(filepath.Join(dir, idxName(ids[0])), b, 0o644)
		}},
		{"other version", func(t *testing.T, dir string, ids []uint32) {
			// A well-formed file (valid checksum) written by another
			// version of the format: rebuilt, as after a downgrade.
			setIndexVersion(t, filepath.Join(dir, idxName(ids[0])), idxVersion+1)
		}},
		{"version 2", func(t *testing.T, dir string, ids []uint32) {
			// The format before bucket fingerprints: rebuilt once, as
			// after an upgrade.
			setIndexVersion(t, filepath.Join(dir, idxName(ids[0])), 2)
		}},
		{"segment changed after sealing", func(t *testing.T, dir string, ids []uint32) {
			// Same size, one payload byte different: the index no longer
			// describes the segment (the record is now damaged).
			flipByte(t, filepath.Join(dir, segName(ids[0])), 0.5)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, cfg, data := indexedStore(t, dir)
			queries := indexQueries(data)
			before := searchAll(t, s, queries)
			s.Close()
			ids, _ := listSegments(dir)
			tc.damage(t, dir, ids)
			s, err := New(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.replayedSegs != 2 {
				t.Errorf("replayed %d segments, want 2 (the one with the bad index and the active one)", s.replayedSegs)
			}
			if tc.name != "segment changed after sealing" {
				if after := searchAll(t, s, queries); !reflect.DeepEqual(before, after) {
					t.Error("search results changed after the index was rebuilt")
				}
				for _, i := range []int{0, 1, 5999} {
					if got, err := s.Trace(ctx, data[i*4].TraceID); err != nil || len(got) != 4 {
						t.Errorf("trace %d: %d spans, %v", i, len(got), err)
					}
				}
			} else if d := s.Damage(); d.Regions != 1 {
				t.Errorf("Damage() = %+v, want the changed record", d)
			}
			damage := s.Damage()
			s.Close()
			// The rebuilt index file is used by the next start.
			s, err = New(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.replayedSegs != 1 {
				t.Errorf("second restart replayed %d segments, want 1", s.replayedSegs)
			}
			if d := s.Damage(); !reflect.DeepEqual(d, damage) {
				t.Errorf("damage after restart %+v, before %+v", d, damage)
			}
		})
	}
}

// indexedStore opens a store in dir holding indexCorpus(6000) in
// several sealed segments with index files and an active one.
func indexedStore(t *testing.T, dir string) (*Store, Config, []spans.Span) {
	t.Helper()
	cfg := Config{Dir: dir, SegmentBytes: 1 << 20, Compression: "none"}
	s, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := indexCorpus(6000)
	writeAll(t, s, data, 400)
	return s, cfg, data
}

func flipByte(t *testing.T, path string, at float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := int(float64(len(b)) * at)
	b[i] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Retention deletes a segment and its index file together.
func TestRetentionDeletesIndexFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 4 << 20, Compression: "none", RetentionInterval: time.Hour}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeAll(t, s, indexCorpus(20000), 400)
	s.sealing.Wait()
	if err := s.ApplyRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	ids, _ := listSegments(dir)
	ents, _ := os.ReadDir(dir)
	var idx, total int64
	for _, e := range ents {
		st, _ := e.Info()
		total += st.Size()
		if filepath.Ext(e.Name()) == idxSuffix {
			idx++
		}
	}
	if int(idx) != len(ids)-1 {
		t.Errorf("%d index files for %d segments (one active): %v", idx, len(ids), ents)
	}
	if total > 4<<20 || total != s.DiskBytes() {
		t.Errorf("files hold %d bytes, store reports %d, cap 4 MiB", total, s.DiskBytes())
	}
}

// FuzzDecodeIndex: any bytes with a valid checksum decode to an error or an
// index whose every accessor stays in bounds.
func FuzzDecodeIndex(f *testing.F) {
	dir := f.TempDir()
	s, err := New(Config{Dir: dir, NoSync: true}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	data := indexCorpus(40)
	for i := 0; i < len(data); i += 16 {
		if err := s.WriteSpans(context.Background(), data[i:i+16]); err != nil {
			f.Fatal(err)
		}
	}
	seg := s.segs[0]
	good := buildIndex(segSource(seg), 0, s.tagHashes(seg), func(id uint32) string { return s.names[id] })
	s.Close()
	f.Add(good, false)
	f.Add(good[:len(good)/2], true)
	f.Add([]byte(idxMagic), true)
	dec, err := zstd.NewReader(nil)
	if err != nil {
		f.Fatal(err)
	}
	defer dec.Close()
	f.Fuzz(func(t *testing.T, b []byte, fixCRC bool) {
		if fixCRC && len(b) >= 4 {
			b = binary.LittleEndian.AppendUint32(slices.Clone(b[:len(b)-4]), crc32.Checksum(b[:len(b)-4], castagnoli))
		}
		x, err := decodeIndex(bytes.NewReader(b), int64(len(b)), -1, dec, newIndexCache(1<<20))
		if err != nil {
			return
		}
		x.global = make([]uint32, len(x.names))
		for i := range x.global {
			x.global[i] = uint32(i)
		}
		for i := range x.nRows {
			if m, err := x.rowMeta(i); err == nil {
				x.traceRows(m.trace)
			}
		}
		for _, p := range x.posts {
			x.postingList(p.key, p.a, p.b)
		}
		if x.nBuckets > 0 {
			for h := range uint64(64) {
				x.tagList(h * 0x9e3779b97f4a7c15)
			}
		}
		x.firstAtOrBefore(0)
	})
}

// A block of an index file damaged after the store opened it (the file is
// read block by block later, checksum checked at open only as a whole) is
// reported as an error by the read that decodes it, never a panic or a
// wrong answer; the other segments stay readable.
func TestIndexBlockDamagedAfterOpen(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		blocks func(x *segIndex) []uint64 // file offsets of a byte inside each damaged block
	}{
		{"row blocks", func(x *segIndex) []uint64 {
			var out []uint64
			for _, b := range x.blocks {
				out = append(out, x.sec[secRows].off+b.off+uint64(b.len)/2)
			}
			return out
		}},
		{"trace row blocks", func(x *segIndex) []uint64 {
			var out []uint64
			for i := range len(x.traceDir) - 1 {
				out = append(out, x.sec[secTraceRows].off+uint64(x.traceDir[i]+x.traceDir[i+1])/2)
			}
			return out
		}},
		{"posting lists", func(x *segIndex) []uint64 {
			var out []uint64
			for _, p := range x.posts {
				out = append(out, x.sec[secPostings].off+uint64(p.off)+uint64(p.len)/2)
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, cfg, data := indexedStore(t, dir)
			s.Close()
			s, err := New(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			seg := s.segs[0]
			if seg.idx == nil {
				t.Fatal("first segment has no index file")
			}
			path := filepath.Join(dir, idxName(seg.id))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, at := range tc.blocks(seg.idx) {
				b[at] ^= 0x40
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
			failed := 0
			for _, q := range indexQueries(data) {
				if _, err := s.Search(ctx, q.q); err != nil {
					if !errors.Is(err, errIndex) {
						t.Errorf("%s: error %v does not name a bad index", q.name, err)
					}
					failed++
				}
			}
			for i := range 6000 {
				if got, err := s.Trace(ctx, data[i*4].TraceID); err != nil {
					if !errors.Is(err, errIndex) {
						t.Errorf("trace %d: error %v does not name a bad index", i, err)
					}
					failed++
				} else if len(got) != 4 {
					t.Errorf("trace %d: %d spans, want 4", i, len(got))
				}
			}
			if failed == 0 {
				t.Error("no read reported the damaged blocks")
			}
		})
	}
}

// Rows read back from an index file equal the rows it was built from,
// whatever their values: durations with and without common decimal
// factors (zero, negative, the extremes), offsets going up and down within
// a record, several records, peers and none.
func TestIndexRowsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		dur  func(i int) int64
		off  func(i int) uint32
	}{
		{"ns durations", func(i int) int64 { return int64(i*7919 + 1) }, func(i int) uint32 { return uint32(i * 100) }},
		{"µs durations", func(i int) int64 { return int64(i%50) * 1000 }, func(i int) uint32 { return uint32(1e6 - i*100) }},
		{"zero durations", func(int) int64 { return 0 }, func(i int) uint32 { return uint32(i*37%1000) * 64 }},
		{"extreme durations", func(i int) int64 {
			return []int64{maxInt64, -maxInt64 - 1, -1, 1e18, -1e17, 0}[i%6]
		}, func(i int) uint32 { return uint32(i) * 14316557 }}, // all 32 bits, up and down
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 1000
			names := []string{"a", "b", "c", "d"}
			metas := make([]spanMeta, n)
			for i := range metas {
				metas[i] = spanMeta{
					trace: spans.TraceID{byte(i % 7), byte(i / 7)}, rec: uint32(i/300) * 1000, recLen: 1000,
					off: tc.off(i), length: uint32(i % 300), start: int64(i/3) * 1e6, dur: tc.dur(i),
					svc: uint32(i % 2), op: uint32(2 + i%2), kind: spans.Kind(i % 5), status: spans.StatusCode(i % 3),
					peer: uint32(i % 3 % 2 * 4), // 0 or 4 (name 3 + 1)
				}
			}
			src := indexSource{rows: n, meta: func(i int) *spanMeta { return &metas[i] }, size: 4000}
			b := buildIndex(src, 0, nil, func(id uint32) string { return names[id] })
			x, err := decodeIndex(bytes.NewReader(b), int64(len(b)), 4000, nil, newIndexCache(1<<20))
			if err != nil {
				t.Fatal(err)
			}
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			x.dec = dec
			x.global = make([]uint32, len(x.names))
			for i, nm := range x.names {
				x.global[i] = uint32(slices.Index(names, nm))
			}
			got := map[[2]uint32]spanMeta{}
			for r := range x.nRows {
				m, err := x.rowMeta(r)
				if err != nil {
					t.Fatalf("row %d: %v", r, err)
				}
				got[[2]uint32{m.rec, m.off}] = m
				if r > 0 {
					if prev, _, _ := x.rowKey(r - 1); prev < m.start {
						t.Fatalf("row %d starts after row %d", r, r-1)
					}
				}
			}
			for i, want := range metas {
				k := [2]uint32{want.rec, want.off}
				if g, ok := got[k]; !ok || g != want {
					t.Fatalf("span %d: read %+v, wrote %+v", i, g, want)
				}
			}
			for i, want := range metas {
				rows, err := x.traceRows(want.trace)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, r := range rows {
					m, _ := x.rowMeta(int(r))
					found = found || m == want
				}
				if !found {
					t.Fatalf("span %d not among its trace's %d rows", i, len(rows))
				}
			}
		})
	}
}

// Attribute pairs sharing one bucket: a pair of another fingerprint is
// dropped by the bucket read, and a pair of the same fingerprint (a
// collision) is merged and ruled out by its span; every search stays exact.
func TestTagBucketFingerprints(t *testing.T) {
	ctx := context.Background()
	nb := uint64(tagBuckets(0)) // a small segment's bucket count
	want := attrHash("k", "v-0")
	var same, other string // same bucket; same / another fingerprint
	for i := 1; same == "" || other == ""; i++ {
		v := fmt.Sprintf("v-%d", i)
		h := attrHash("k", v)
		if h&(nb-1) != want&(nb-1) || h == want {
			continue
		}
		if tagFingerprint(h) == tagFingerprint(want) {
			same = cmp.Or(same, v)
		} else {
			other = cmp.Or(other, v)
		}
	}
	data := indexCorpus(200)
	vals := []string{"v-0", same, other}
	for i := range data {
		if i%4 == 1 && i/4 < len(vals)*20 { // traces 0..59: one span each with a value
			data[i].Attrs = append(data[i].Attrs, spans.StringAttr("k", vals[i/4%len(vals)]))
		}
	}
	s, err := New(Config{Dir: t.TempDir(), NoSync: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeAll(t, s, data, 100)
	sealActive(t, s)
	x := s.segs[0].idx
	if x == nil || x.nBuckets != int(nb) {
		t.Fatalf("sealed segment index: %v", x)
	}
	rowsOf := func(v string) int {
		l, dense, err := x.tagList(attrHash("k", v))
		if err != nil || dense {
			t.Fatalf("%s: dense %v, %v", v, dense, err)
		}
		return len(l)
	}
	if got := rowsOf("v-0"); got != 40 { // its 20 rows and the colliding pair's 20
		t.Errorf("bucket rows for v-0: %d, want 40 (20 + 20 of the same fingerprint)", got)
	}
	if got := rowsOf(other); got != 20 {
		t.Errorf("bucket rows for %s: %d, want its 20", other, got)
	}
	for _, v := range append(vals, "v-nowhere") {
		q := tracestore.Query{Attrs: map[string]string{"k": v}, Limit: 100}
		got, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if w := expectSearch(data, q); !refsEqual(got, w) {
			t.Errorf("k=%s: %d refs, want %d", v, len(got), len(w))
		}
	}
}

// A bucket list decodes to the groups it was built from, and damaged lists
// are errors.
func TestTagBucketRoundTrip(t *testing.T) {
	var ents []tagEntry
	for r := range uint32(500) {
		ents = append(ents, tagEntry{r, uint64(r%7) << 56})
		if r%3 == 0 {
			ents = append(ents, tagEntry{r, uint64(r)<<56 | 1}) // unique pairs, some rows twice
		}
	}
	b := appendTagBucket(nil, slices.Clone(ents))
	tb, err := decodeTagBucket(b, 500)
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]uint32]bool{}
	for g := range tb.fp {
		for _, r := range tb.rows[tb.start[g]:tb.start[g+1]] {
			got[[2]uint32{r, uint32(tb.fp[g])}] = true
		}
	}
	wrote := map[[2]uint32]bool{}
	for _, e := range ents {
		k := [2]uint32{e.row, uint32(tagFingerprint(e.h))}
		if wrote[k] = true; !got[k] {
			t.Fatalf("entry %+v lost", e)
		}
	}
	if len(got) != len(wrote) {
		t.Fatalf("%d entries decoded, %d written", len(got), len(wrote))
	}
	if _, err := decodeTagBucket(b, 499); err == nil {
		t.Error("rows beyond the segment accepted")
	}
	if _, err := decodeTagBucket(b[:len(b)-1], 500); err == nil {
		t.Error("truncated list accepted")
	}
}

// setIndexVersion rewrites an index file's version field (checksum fixed).
func setIndexVersion(t *testing.T, p string, v uint32) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[8:], v)
	b = binary.LittleEndian.AppendUint32(b[:len(b)-4], crc32.Checksum(b[:len(b)-4], castagnoli))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
