package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshscope/meshscope/collector/spans"
)

func randAttrs(r *rand.Rand, strs []string) []spans.Attr {
	n := r.IntN(5)
	if n == 0 {
		return nil
	}
	out := make([]spans.Attr, n)
	for i := range out {
		a := spans.Attr{Key: strs[r.IntN(len(strs))], Type: spans.ValueType(r.IntN(6))}
		switch a.Type {
		case spans.TypeInt:
			a.Int = int64(r.Uint64())
		case spans.TypeFloat:
			a.Float = []float64{0, math.Copysign(0, -1), math.Inf(1), math.NaN(), r.NormFloat64()}[r.IntN(5)]
		case spans.TypeBool:
			a.Bool = r.IntN(2) == 0
		default: // string, bytes and an unknown type 5
			a.Str = strs[r.IntN(len(strs))]
			if r.IntN(3) == 0 {
				a.Str = fmt.Sprintf("u-%x", r.Uint64()) // used once: stored inline
			}
		}
		out[i] = a
	}
	return out
}

// randSpans makes spans with every field set at random: shared and unique
// strings (including empty ones), shared resource sets, events, links, all
// attribute types and extreme times.
func randSpans(r *rand.Rand, n int) []spans.Span {
	strs := []string{"", "svc", "op", "k", "v", "\x00\xff", "http.route"}
	for range 20 {
		strs = append(strs, fmt.Sprintf("s-%x", r.Uint64()))
	}
	res := [][]spans.Attr{nil, {spans.StringAttr("service.name", "svc")}, randAttrs(r, strs)}
	var traces []spans.TraceID
	out := make([]spans.Span, n)
	for i := range out {
		s := &out[i]
		if len(traces) == 0 || r.IntN(4) == 0 {
			var t spans.TraceID
			binary.LittleEndian.PutUint64(t[:], r.Uint64())
			binary.LittleEndian.PutUint64(t[8:], r.Uint64())
			traces = append(traces, t)
		}
		s.TraceID = traces[r.IntN(len(traces))]
		binary.LittleEndian.PutUint64(s.SpanID[:], r.Uint64())
		switch r.IntN(3) {
		case 0:
			binary.LittleEndian.PutUint64(s.ParentSpanID[:], r.Uint64())
		case 1: // a span of the same trace (if there is one), often stored as a reference
			for j := i - 1; j >= 0; j-- {
				if out[j].TraceID == s.TraceID {
					s.ParentSpanID = out[j].SpanID
					break
				}
			}
		}
		switch r.IntN(4) {
		case 0:
			s.StartUnixNano, s.EndUnixNano = int64(r.Uint64()), int64(r.Uint64())
		case 1:
			s.StartUnixNano, s.EndUnixNano = math.MinInt64, math.MaxInt64
		default:
			s.StartUnixNano = 1_700_000_000_000_000_000 + r.Int64N(1e12)
			s.EndUnixNano = s.StartUnixNano + r.Int64N(1e9)
		}
		s.Kind, s.StatusCode = spans.Kind(r.IntN(256)), spans.StatusCode(r.IntN(256))
		s.Service, s.Name = strs[r.IntN(len(strs))], strs[r.IntN(len(strs))]
		s.TraceState, s.StatusMessage = strs[r.IntN(len(strs))], strs[r.IntN(len(strs))]
		s.Scope, s.ScopeVersion = strs[r.IntN(len(strs))], strs[r.IntN(len(strs))]
		s.Attrs = randAttrs(r, strs)
		if rs := res[r.IntN(len(res))]; r.IntN(5) == 0 {
			s.Resource = randAttrs(r, strs) // a set of its own
		} else if len(rs) > 0 {
			s.Resource = append([]spans.Attr(nil), rs...) // an equal set, another slice
		}
		for range r.IntN(3) {
			s.Events = append(s.Events, spans.Event{TimeUnixNano: int64(r.Uint64()), Name: strs[r.IntN(len(strs))], Attrs: randAttrs(r, strs)})
		}
		for range r.IntN(3) {
			l := spans.Link{Attrs: randAttrs(r, strs)}
			binary.LittleEndian.PutUint64(l.TraceID[:], r.Uint64())
			binary.LittleEndian.PutUint64(l.SpanID[:8], r.Uint64())
			s.Links = append(s.Links, l)
		}
	}
	return out
}

// blockRecord encodes batches as one record's raw body (the write loop's
// layout) and returns each span's location in it.
func blockRecord(batches ...[]spans.Span) ([]byte, []spanLoc) {
	total := 0
	for _, b := range batches {
		total += len(b)
	}
	raw := binary.AppendUvarint(nil, uint64(total))
	var locs []spanLoc
	for _, b := range batches {
		offs, lens := make([]uint32, len(b)), make([]uint32, len(b))
		base := len(raw)
		raw = append(raw, appendBlock(nil, b, offs, lens, make([]int32, len(b)))...)
		for i := range offs {
			locs = append(locs, spanLoc{off: uint32(base) + offs[i], length: lens[i]})
		}
	}
	return raw, locs
}

// readRawRecord reads a record's raw body as replay does.
func readRawRecord(raw []byte, hashOnly bool) (*segReader, error) {
	r := &segReader{hashOnly: hashOnly}
	count, k := binary.Uvarint(raw)
	if k <= 0 {
		return nil, errShort
	}
	if err := r.readBlocks(raw, raw[k:], count, spanLoc{}); err != nil {
		return nil, err
	}
	return r, nil
}

func spansEqual(a, b []spans.Span) bool {
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

func TestBlockRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 50 {
		a, b := randSpans(r, 1+r.IntN(40)), randSpans(r, 1+r.IntN(40))
		raw, locs := blockRecord(a, b)
		want := append(slices.Clone(a), b...)
		rd, err := readRawRecord(raw, false)
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		// Spans are read in the record's order (a block groups them by
		// trace): match them to the input by location.
		at := map[uint32]int{}
		for i, loc := range rd.offs {
			at[loc.off] = i
		}
		got := make([]spans.Span, len(want))
		readAs := make([]int, len(want))
		for i, loc := range locs {
			j, ok := at[loc.off]
			if !ok || rd.offs[j].length != loc.length {
				t.Fatalf("span %d written at %d+%d not read there", i, loc.off, loc.length)
			}
			got[i] = rd.spans[j]
			readAs[i] = j
		}
		if len(rd.spans) != len(want) || !spansEqual(got, want) {
			t.Fatalf("iteration %d: record does not round trip:\n%#v\n%#v", iter, got, want)
		}
		for i, loc := range locs {
			var sp spans.Span
			if err := decodeRecordSpan(raw, loc.off, loc.length, &sp, nil); err != nil {
				t.Fatalf("span %d: %v", i, err)
			}
			if !spansEqual([]spans.Span{sp}, want[i:i+1]) {
				t.Fatalf("span %d does not round trip:\n%#v\n%#v", i, sp, want[i])
			}
		}
		for i := range want {
			for j := range want[i].Attrs {
				if math.Float64bits(want[i].Attrs[j].Float) != math.Float64bits(got[i].Attrs[j].Float) {
					t.Fatalf("span %d attribute %d: float bits differ", i, j)
				}
			}
		}
		// Hashing in place gives the decoded spans' hashes.
		hr, err := readRawRecord(raw, true)
		if err != nil {
			t.Fatal(err)
		}
		var wantHashes []uint64
		for i := range want {
			j := readAs[i]
			from := 0
			if j > 0 {
				from = hr.hashEnd[j-1]
			}
			wantHashes = appendAttrHashes(wantHashes[:0], &want[i])
			if h := hr.hashes[from:hr.hashEnd[j]]; fmt.Sprint(h) != fmt.Sprint(wantHashes) {
				t.Fatalf("span %d: hashes %v, want %v", i, h, wantHashes)
			}
		}
	}
}

// TestBlockDamage: a cut or changed record never panics; reading it for
// spans and for hashes fails alike, and a cut always fails.
func TestBlockDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	raw, _ := blockRecord(randSpans(r, 5), randSpans(r, 3))
	for i := range raw {
		_, derr := readRawRecord(raw[:i], false)
		_, herr := readRawRecord(raw[:i], true)
		if derr == nil || herr == nil {
			t.Fatalf("record cut at %d/%d read without error: %v, %v", i, len(raw), derr, herr)
		}
	}
	for i := range raw {
		for _, x := range []byte{1, 0x80, 0xff} {
			bad := slices.Clone(raw)
			bad[i] ^= x
			_, derr := readRawRecord(bad, false)
			_, herr := readRawRecord(bad, true)
			if (derr == nil) != (herr == nil) {
				t.Fatalf("byte %d ^ %#x: decoding error %v, hashing error %v", i, x, derr, herr)
			}
		}
	}
}

// FuzzDecodeBlocks: arbitrary record bodies never crash the block reader or
// the single-span reader, and hashing fails exactly where decoding fails.
func FuzzDecodeBlocks(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	raw, _ := blockRecord(randSpans(r, 3), randSpans(r, 2))
	f.Add(raw, uint32(10), uint32(30))
	s := sampleSpan()
	raw, locs := blockRecord([]spans.Span{s})
	f.Add(raw, locs[0].off, locs[0].length)
	f.Add([]byte{1, blockFormatVersion}, uint32(0), uint32(1))
	f.Fuzz(func(t *testing.T, raw []byte, off, length uint32) {
		_, derr := readRawRecord(raw, false)
		_, herr := readRawRecord(raw, true)
		if (derr == nil) != (herr == nil) {
			t.Fatalf("decoding error %v, hashing error %v", derr, herr)
		}
		var sp spans.Span
		_ = decodeRecordSpan(raw, off, length, &sp, nil)
	})
}

// TestVersion1RecordsStillRead: a segment written in span format 1 opens,
// its spans read back, and spans written after them (in blocks) too.
func TestVersion1RecordsStillRead(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 8))
	old := randSpans(r, 30)
	for i := range old {
		old[i].TraceID = spans.TraceID{1}
		old[i].StartUnixNano, old[i].EndUnixNano = int64(1e18+i), int64(1e18+2*i)
	}
	raw := binary.AppendUvarint(nil, uint64(len(old)))
	for i := range old {
		raw = appendSpan(raw, &old[i])
	}
	payload := append([]byte{codecRaw}, binary.AppendUvarint(nil, uint64(len(raw)))...)
	payload = append(payload, raw...)
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(payload, castagnoli))
	file := append([]byte(segMagic), append(rec, payload...)...)
	if err := os.WriteFile(filepath.Join(dir, segName(1)), file, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir)
	fresh := randSpans(r, 20)
	for i := range fresh {
		fresh[i].TraceID = spans.TraceID{1}
		fresh[i].StartUnixNano, fresh[i].EndUnixNano = int64(1e18+i), int64(1e18+3*i)
	}
	if err := s.WriteSpans(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		got, err := s.Trace(context.Background(), spans.TraceID{1})
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(old), fresh...)
		key := func(a, b spans.Span) int { return slices.Compare(a.SpanID[:], b.SpanID[:]) }
		slices.SortFunc(got, key)
		slices.SortFunc(want, key)
		if !spansEqual(got, want) {
			t.Fatalf("trace read back differs:\n%#v\n%#v", got, want)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	check(s)
}
