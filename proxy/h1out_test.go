package proxy

import (
	"errors"
	"strings"
	"testing"
)

// callLog records each write reaching the connection, a writePair as one
// call of both slices joined with "|".
type callLog struct {
	calls []string
	fail  error
}

func (l *callLog) Write(p []byte) (int, error) {
	if l.fail != nil {
		return 0, l.fail
	}
	l.calls = append(l.calls, string(p))
	return len(p), nil
}

type pairLog struct{ callLog }

func (l *pairLog) writePair(a, b []byte) (int, error) {
	if l.fail != nil {
		return 0, l.fail
	}
	l.calls = append(l.calls, string(a)+"|"+string(b))
	return len(a) + len(b), nil
}

func TestH1Out(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pair   bool
		writes []string // "" flushes
		want   []string
	}{
		{"fits: one write at the flush", true, []string{"head", "body", ""}, []string{"headbody"}},
		{"too large, nothing held: written at once", true, []string{"0123456789AB", ""}, []string{"0123456789AB"}},
		{"too large after held bytes: one writev", true, []string{"head", "0123456789", ""}, []string{"head|0123456789"}},
		{"too large after held bytes, no writev: as bufio", false, []string{"head", "0123456789", ""}, []string{"head012345", "6789"}},
		{"held then flushed then held", true, []string{"ab", "", "cd", ""}, []string{"ab", "cd"}},
		{"empty flush writes nothing", true, []string{"", ""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log *callLog
			o := h1Out{buf: make([]byte, 0, 10)}
			if tc.pair {
				pl := &pairLog{}
				o.w, o.pair, log = pl, pl, &pl.callLog
			} else {
				log = &callLog{}
				o.w = log
			}
			for _, w := range tc.writes {
				if w == "" {
					if err := o.Flush(); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if n, err := o.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if strings.Join(log.calls, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("writes reaching the connection = %q; want %q", log.calls, tc.want)
			}
		})
	}
}

func TestH1OutErrorsAreSticky(t *testing.T) {
	boom := errors.New("boom")
	for _, pair := range []bool{false, true} {
		pl := &pairLog{callLog{fail: boom}}
		o := h1Out{w: pl, buf: make([]byte, 0, 4)}
		if pair {
			o.pair = pl
		}
		_, _ = o.Write([]byte("ab"))
		if _, err := o.Write([]byte("cdefgh")); !errors.Is(err, boom) {
			t.Fatalf("pair=%v: Write past the buffer = %v; want boom", pair, err)
		}
		pl.fail = nil
		if _, err := o.Write([]byte("x")); !errors.Is(err, boom) {
			t.Fatalf("pair=%v: Write after a failure = %v; want the first error", pair, err)
		}
		if err := o.Flush(); !errors.Is(err, boom) || len(pl.calls) != 0 {
			t.Fatalf("pair=%v: Flush after a failure = %v with %q written; want the first error, nothing", pair, err, pl.calls)
		}
	}
}
