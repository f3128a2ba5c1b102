package embedded

import (
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
