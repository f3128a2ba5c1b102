package embedded

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

func span(trace byte, n byte, start time.Time) spans.Span {
	return spans.Span{TraceID: spans.TraceID{trace, 1}, SpanID: spans.SpanID{n, 1}, Service: "svc", Name: "op",
		StartUnixNano: start.UnixNano(), EndUnixNano: start.Add(time.Millisecond).UnixNano(),
		Attrs: []spans.Attr{spans.StringAttr("pad", randomText(1000))}}
}

// randomText defeats compression so sizes are predictable.
func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return string(b)
}

func lastSegment(t *testing.T, dir string) string {
	ids, err := listSegments(dir)
	if err != nil || len(ids) == 0 {
		t.Fatalf("segments: %v %v", ids, err)
	}
	return filepath.Join(dir, segName(ids[len(ids)-1]))
}

func TestTornTailIsCutAndWritesContinue(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"partial header", []byte{0x10, 0x00}},
		{"partial payload", []byte{0x40, 0, 0, 0, 1, 2, 3, 4, 9, 9}},
		{"bad checksum", append([]byte{2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}, 1, 0)},
		{"absurd length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			now := time.Now()
			if err := s.WriteSpans(ctx, []spans.Span{span(1, 1, now), span(1, 2, now)}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			f, err := os.OpenFile(lastSegment(t, dir), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.tail)
			f.Close()

			s = openTest(t, dir)
			if got, err := s.Trace(ctx, spans.TraceID{1, 1}); err != nil || len(got) != 2 {
				t.Fatalf("after torn tail: %d spans, %v", len(got), err)
			}
			if err := s.WriteSpans(ctx, []spans.Span{span(2, 1, now)}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTest(t, dir)
			defer s.Close()
			for _, id := range []spans.TraceID{{1, 1}, {2, 1}} {
				if _, err := s.Trace(ctx, id); err != nil {
					t.Fatalf("trace %v after second reopen: %v", id, err)
				}
			}
		})
	}
}

func TestRetentionBySizeAndAge(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, MaxBytes: 4 << 20, SegmentBytes: 1 << 20, Retention: time.Hour, RetentionInterval: time.Hour}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	// ~10 MiB of spans in 1 MiB segments.
	for i := range 100 {
		batch := make([]spans.Span, 100)
		for j := range batch {
			batch[j] = span(byte(i), byte(j), now)
		}
		if err := s.WriteSpans(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	s.sealing.Wait() // index files are written off the write path
	if err := s.ApplyRetention(now); err != nil {
		t.Fatal(err)
	}
	if b := s.DiskBytes(); b > 4<<20 {
		t.Fatalf("DiskBytes = %d after size retention, want ≤ 4 MiB", b)
	}
	if _, err := s.Trace(ctx, spans.TraceID{0, 1}); err != tracestore.ErrTraceNotFound {
		t.Fatalf("oldest trace after size retention: %v, want ErrTraceNotFound", err)
	}
	if got, err := s.Trace(ctx, spans.TraceID{99, 1}); err != nil || len(got) != 100 {
		t.Fatalf("newest trace: %d spans, %v", len(got), err)
	}
	// Segments and their index files: every byte the store keeps.
	var onDisk int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		st, _ := e.Info()
		onDisk += st.Size()
	}
	if onDisk != s.DiskBytes() {
		t.Fatalf("files hold %d bytes, store reports %d", onDisk, s.DiskBytes())
	}
	// Two hours later everything sealed is past the 1h retention; the
	// active segment stays.
	if err := s.ApplyRetention(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ids, _ := listSegments(dir); len(ids) != 1 {
		t.Fatalf("%d segments after age retention, want only the active one", len(ids))
	}
}

func TestConfigValidateNamesKey(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "traces.dir"},
		{Config{Dir: "x", Retention: -time.Second}, "traces.retention"},
		{Config{Dir: "x", MaxBytes: 100}, "traces.max_bytes"},
		{Config{Dir: "x", SegmentBytes: -1}, "traces.segment_bytes"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("Validate(%+v) = %v, want error naming %s", c.cfg, err, c.want)
		}
	}
}

// Search stops scanning older segments only when they cannot hold a better
// hit: a span with the newest start written first (in the oldest segment)
// is still found.
func TestSearchAcrossSegments(t *testing.T) {
	ctx := context.Background()
	s, err := New(Config{Dir: t.TempDir(), SegmentBytes: 1 << 20, MaxBytes: 1 << 30}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Now().Add(-time.Hour)
	future := span(250, 1, base.Add(2*time.Hour))
	if err := s.WriteSpans(ctx, []spans.Span{future}); err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		sp := span(byte(i), byte(i>>8), base.Add(time.Duration(i)*time.Second))
		sp.TraceID = spans.TraceID{byte(i), byte(i >> 8), 7}
		if err := s.WriteSpans(ctx, []spans.Span{sp}); err != nil {
			t.Fatal(err)
		}
	}
	if ids, _ := listSegments(s.cfg.Dir); len(ids) < 3 {
		t.Fatalf("want several segments, got %d", len(ids))
	}
	refs, err := s.Search(ctx, tracestore.Query{Service: "svc", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []spans.TraceID{future.TraceID, {byte(2999 & 0xff), byte(2999 >> 8), 7}, {byte(2998 & 0xff), byte(2998 >> 8), 7}}
	for i := range want {
		if refs[i].TraceID != want[i] {
			t.Fatalf("result %d = %v, want %v", i, refs[i].TraceID, want[i])
		}
	}
}

// Writes, reads, searches and retention at once (meaningful under -race).
func TestConcurrentWriteReadRetention(t *testing.T) {
	ctx := context.Background()
	s, err := New(Config{Dir: t.TempDir(), MaxBytes: 4 << 20, SegmentBytes: 1 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	done := make(chan struct{})
	errc := make(chan error, 8)
	go func() {
		defer close(done)
		for i := range 600 {
			sp := span(byte(i), byte(i>>8), now.Add(time.Duration(i)*time.Millisecond))
			sp.TraceID[2] = byte(i >> 8)
			if err := s.WriteSpans(ctx, []spans.Span{sp, span(byte(i), 200, now)}); err != nil {
				errc <- err
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			return
		default:
		}
		if _, err := s.Search(ctx, tracestore.Query{Service: "svc", Attrs: map[string]string{"missing": "x"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Search(ctx, tracestore.Query{Service: "svc", Limit: 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Trace(ctx, spans.TraceID{1, 1}); err != nil && err != tracestore.ErrTraceNotFound {
			t.Fatal(err)
		}
		if err := s.ApplyRetention(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// Attribute search skips whole records by their Bloom filter and still
// finds the one span that has the value, live and after a replay.
func TestRareAttributeSearchAcrossRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	now := time.Now()
	for i := range 60 {
		batch := make([]spans.Span, 20)
		for j := range batch {
			sp := span(byte(i), byte(j), now.Add(time.Duration(i*20+j)*time.Millisecond))
			sp.TraceID = spans.TraceID{byte(i), byte(j), 5}
			sp.Attrs = []spans.Attr{spans.IntAttr("req", int64(i*20+j)), spans.StringAttr("kind", "x")}
			batch[j] = sp
		}
		if err := s.WriteSpans(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for _, n := range []int{0, 19, 20, 617, 1199} {
			refs, err := s.Search(ctx, tracestore.Query{Attrs: map[string]string{"req": fmt.Sprint(n)}})
			if err != nil {
				t.Fatal(err)
			}
			if want := (spans.TraceID{byte(n / 20), byte(n % 20), 5}); len(refs) != 1 || refs[0].TraceID != want {
				t.Fatalf("req=%d: %v, want %v", n, refs, want)
			}
		}
		refs, err := s.Search(ctx, tracestore.Query{Attrs: map[string]string{"kind": "x"}, Limit: 5000})
		if err != nil || len(refs) != 1200 {
			t.Fatalf("common attribute: %d traces, %v", len(refs), err)
		}
	}
	check(s)
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	check(s)
}
