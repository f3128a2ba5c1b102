package embedded

import (
	"context"
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
		Attrs: []spans.Attr{spans.StringAttr("pad", strings.Repeat("p", 1000))}}
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
	var onDisk int64
	ids, _ := listSegments(dir)
	for _, id := range ids {
		st, _ := os.Stat(filepath.Join(dir, segName(id)))
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
