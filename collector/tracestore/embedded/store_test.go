package embedded

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/storetest"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(Config{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	dirs := map[tracestore.Store]string{}
	storetest.RunOptions(t, func(t *testing.T) tracestore.Store {
		dir := t.TempDir()
		s := openTest(t, dir)
		dirs[s] = dir
		return s
	}, storetest.Options{
		Reopen: func(t *testing.T, s tracestore.Store) tracestore.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openTest(t, dirs[s])
		},
	})
}

func TestConformanceUncompressed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tracestore.Store {
		s, err := New(Config{Dir: t.TempDir(), Compression: "none"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The index row stays 64 bytes (docs/format/traces.md sizes memory by it).
func TestSpanMetaSize(t *testing.T) {
	if n := unsafe.Sizeof(spanMeta{}); n != 64 {
		t.Fatalf("spanMeta is %d bytes, want 64", n)
	}
}

// TestMetaRows: rows read back in order across chunk boundaries, a copy
// taken earlier still sees its rows after more are added.
func TestMetaRows(t *testing.T) {
	for _, n := range []int{0, 1, 1<<metaChunkBits - 1, 1 << metaChunkBits, 3<<metaChunkBits + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var r metaRows
			var snap metaRows
			for i := range n {
				if i == n/2 {
					snap = r
				}
				r.add(spanMeta{start: int64(i), off: uint32(i)})
			}
			if r.n != n || snap.n != n/2 {
				t.Fatalf("n = %d, snapshot %d; want %d, %d", r.n, snap.n, n, n/2)
			}
			for i := range snap.n {
				if m := snap.at(i); m.start != int64(i) {
					t.Fatalf("snapshot row %d holds %d", i, m.start)
				}
			}
			for i := range r.n {
				if m := r.at(i); m.start != int64(i) || m.off != uint32(i) {
					t.Fatalf("row %d holds start %d, offset %d", i, m.start, m.off)
				}
			}
		})
	}
}
