package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// damageCorpus writes `batches` batches of 10 spans one after the other
// (so batch i is record i of the log) into 1 MiB segments and closes the
// store. Trace i holds batch i.
func damageCorpus(t testing.TB, dir, compression string, batches int) {
	t.Helper()
	s, err := New(Config{Dir: dir, SegmentBytes: 1 << 20, Compression: compression}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range batches {
		batch := make([]spans.Span, 10)
		for j := range batch {
			batch[j] = span(byte(i), byte(j), now)
			batch[j].TraceID = damageTrace(i)
		}
		if err := s.WriteSpans(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func damageTrace(i int) spans.TraceID {
	var id spans.TraceID
	binary.BigEndian.PutUint32(id[:], uint32(i)+1)
	id[15] = 0xda
	return id
}

// recordStarts walks a segment's framing (as written, undamaged) and
// returns the offset of each record.
func recordStarts(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for off := int64(len(segMagic)); off < int64(len(b)); {
		out = append(out, off)
		off += recordHeader + int64(binary.LittleEndian.Uint32(b[off:]))
	}
	return out
}

// countSpans returns how many spans of traces 0..n-1 the store returns.
func countSpans(t *testing.T, s *Store, n int) (total int, perTrace []int) {
	t.Helper()
	perTrace = make([]int, n)
	for i := range n {
		got, err := s.Trace(context.Background(), damageTrace(i))
		if err != nil && !errors.Is(err, tracestore.ErrTraceNotFound) {
			t.Fatalf("trace %d: %v", i, err)
		}
		perTrace[i] = len(got)
		total += len(got)
	}
	return total, perTrace
}

// A flipped byte in a sealed segment loses only the record it hits: every
// record after it, in the same segment and later ones, stays readable; the
// sealed file is not modified; the loss is counted, logged and reported.
func TestSealedSegmentDamageSkipsOnlyDamagedRecords(t *testing.T) {
	const batches = 300 // ~10 KiB records: ~100 per 1 MiB segment, 3+ segments
	type flip struct {
		rec int   // record index within the first segment
		at  int64 // byte offset within the record (header included); -1 = last byte
	}
	for _, compression := range []string{"zstd", "none"} {
		for _, tc := range []struct {
			name  string
			flips []flip
		}{
			{"length field", []flip{{5, 1}}},
			{"length high byte", []flip{{5, 3}}},
			{"checksum", []flip{{7, 5}}},
			{"codec byte", []flip{{9, recordHeader}}},
			{"payload middle", []flip{{11, 3000}}},
			{"last byte of record", []flip{{13, -1}}},
			{"first record", []flip{{0, 2000}}},
			{"last record of sealed segment", []flip{{-1, 500}}},
			{"several records", []flip{{2, 100}, {3, 0}, {40, 5000}, {60, 8}}},
		} {
			t.Run(compression+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				damageCorpus(t, dir, compression, batches)
				ids, err := listSegments(dir)
				if err != nil || len(ids) < 3 {
					t.Fatalf("want at least 3 segments, got %v %v", ids, err)
				}
				first := filepath.Join(dir, segName(ids[0]))
				starts := recordStarts(t, first)
				b, err := os.ReadFile(first)
				if err != nil {
					t.Fatal(err)
				}
				lost := map[int]bool{}
				for _, f := range tc.flips {
					rec := f.rec
					if rec < 0 {
						rec = len(starts) - 1
					}
					end := int64(len(b))
					if rec+1 < len(starts) {
						end = starts[rec+1]
					}
					at := starts[rec] + f.at
					if f.at < 0 {
						at = end - 1
					}
					b[at] ^= 0x5a
					lost[rec] = true
				}
				if err := os.WriteFile(first, b, 0o644); err != nil {
					t.Fatal(err)
				}

				reg := prometheus.NewRegistry()
				s, err := New(Config{Dir: dir, SegmentBytes: 1 << 20, Compression: compression}, reg, nil)
				if err != nil {
					t.Fatalf("reopen: %v", err)
				}
				defer s.Close()
				total, per := countSpans(t, s, batches)
				for i, n := range per {
					want := 10
					if lost[i] {
						want = 0
					}
					if n != want {
						t.Errorf("trace %d: %d spans, want %d", i, n, want)
					}
				}
				if want := 10 * (batches - len(lost)); total != want {
					t.Errorf("%d spans readable after damage, want %d (all but the %d damaged records)", total, want, len(lost))
				}
				after, err := os.ReadFile(first)
				if err != nil || string(after) != string(b) {
					t.Errorf("sealed segment was modified at open (%d → %d bytes, %v)", len(b), len(after), err)
				}
				d := s.Damage()
				if d.Regions == 0 || d.Regions > len(tc.flips) || d.Bytes <= 0 || len(d.Where) == 0 {
					t.Errorf("Damage() = %+v, want 1..%d regions", d, len(tc.flips))
				}
				if got := testutil.ToFloat64(s.m.corruptRecords); int(got) != d.Regions {
					t.Errorf("corrupt records metric %v, Damage reports %d", got, d.Regions)
				}
				if got := testutil.ToFloat64(s.m.corruptBytes); int64(got) != d.Bytes {
					t.Errorf("corrupt bytes metric %v, Damage reports %d", got, d.Bytes)
				}
				// Searches still work across the damaged segment.
				refs, err := s.Search(context.Background(), tracestore.Query{Service: "svc", Limit: batches})
				if err != nil || len(refs) != batches-len(lost) {
					t.Errorf("search: %d traces, %v; want %d", len(refs), err, batches-len(lost))
				}
			})
		}
	}
}

// Damage in the middle of the active segment is skipped like in a sealed
// one; a torn tail after it is still cut; the store keeps accepting writes
// and everything acknowledged later survives the next restart.
func TestActiveSegmentDamageThenTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	damageCorpus(t, dir, "zstd", 20) // all in one (active) segment
	path := lastSegment(t, dir)
	starts := recordStarts(t, path)
	b, _ := os.ReadFile(path)
	b[starts[4]+100] ^= 0xff
	b = append(b, 0x40, 0, 0, 0, 1, 2, 3) // torn write
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir)
	if total, per := countSpans(t, s, 20); total != 190 || per[4] != 0 {
		t.Fatalf("%d spans (trace 4: %d), want 190 with trace 4 lost", total, per[4])
	}
	if st, _ := os.Stat(path); st.Size() != int64(len(b))-7 {
		t.Errorf("segment is %d bytes, want the torn 7-byte tail cut (%d)", st.Size(), len(b)-7)
	}
	if err := s.WriteSpans(ctx, []spans.Span{span(0xee, 1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	if total, _ := countSpans(t, s, 20); total != 190 {
		t.Errorf("%d spans after second restart, want 190", total)
	}
	if _, err := s.Trace(ctx, spans.TraceID{0xee, 1}); err != nil {
		t.Errorf("span written after recovery: %v", err)
	}
}

// Restarting reuses the active segment: N restarts add no file.
func TestRestartDoesNotAddSegments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if err := s.WriteSpans(ctx, []spans.Span{span(1, 1, time.Now())}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := listSegments(dir)
	for i := range 5 {
		s = openTest(t, dir)
		if i%2 == 0 {
			if err := s.WriteSpans(ctx, []spans.Span{span(2, byte(i), time.Now())}); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	after, _ := listSegments(dir)
	if len(after) != len(before) {
		t.Fatalf("%d segments after 5 restarts, %d before", len(after), len(before))
	}
	s = openTest(t, dir)
	defer s.Close()
	if got, err := s.Trace(ctx, spans.TraceID{2, 1}); err != nil || len(got) != 3 {
		t.Fatalf("spans written between restarts: %d, %v", len(got), err)
	}
}

// FuzzReplaySegment: whatever follows the magic, replay neither fails nor
// panics, and accounts for every byte as read or damaged.
func FuzzReplaySegment(f *testing.F) {
	dir := f.TempDir()
	damageCorpus(f, dir, "zstd", 3)
	ids, _ := listSegments(dir)
	good, _ := os.ReadFile(filepath.Join(dir, segName(ids[0])))
	f.Add(good[len(segMagic):])
	f.Add([]byte{2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(append(append([]byte{}, good[len(segMagic):len(segMagic)+50]...), good[len(segMagic):]...))
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxRecord))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		file := append([]byte(segMagic), body...)
		res, err := replaySegment(bytes.NewReader(file), int64(len(file)), dec, func(*spans.Span, spanLoc) error { return nil })
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if res.end > int64(len(segMagic)+len(body)) {
			t.Fatalf("end %d past the file", res.end)
		}
		if res.tail != nil && res.tail.off+res.tail.n != int64(len(segMagic)+len(body)) {
			t.Fatalf("tail %+v does not reach the end of the file", res.tail)
		}
	})
}
