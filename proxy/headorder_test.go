package proxy

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestReorderHead(t *testing.T) {
	tests := []struct {
		name, head, names, want string
	}{
		{"case and order as sent",
			"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: u\r\nAccept: */*\r\nX-Multi: b\r\nX-Multi: a\r\n\r\n",
			"x-multi\nHOST\naccept\nX-MULTI\nuser-agent\n",
			"GET / HTTP/1.1\r\nx-multi: b\r\nHOST: a\r\naccept: */*\r\nX-MULTI: a\r\nuser-agent: u\r\n\r\n"},
		{"added fields last, removed ones skipped",
			"GET / HTTP/1.1\r\nHost: a\r\nTraceparent: 00-x\r\nX-A: 1\r\n\r\n",
			"host\nconnection\nx-a\n",
			"GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nTraceparent: 00-x\r\n\r\n"},
		{"a Host nobody placed goes first",
			"GET / HTTP/1.0\r\nHost: a\r\nX-A: 1\r\n\r\n",
			"x-a\n",
			"GET / HTTP/1.0\r\nHost: a\r\nx-a: 1\r\n\r\n"},
		{"response",
			"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nEtag: \"v\"\r\nSet-Cookie: b=1\r\nSet-Cookie: a=2\r\n\r\n",
			"set-cookie\nETAG\nSet-Cookie\ncontent-length\n",
			"HTTP/1.1 200 OK\r\nset-cookie: b=1\r\nETAG: \"v\"\r\nSet-Cookie: a=2\r\ncontent-length: 0\r\n\r\n"},
		{"not a head: unchanged", "GET / HTTP/1.1\r\nbroken\r\n\r\n", "x\n", "GET / HTTP/1.1\r\nbroken\r\n\r\n"},
	}
	for _, tt := range tests {
		if got := string(reorderHead(nil, []byte(tt.head), tt.names)); got != tt.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// TestHeadRewriterSplitWrites feeds a 1xx and a final head in pieces, as
// a buffered writer may: the interim head passes as written, the final
// one is reordered once complete, the body follows unchanged.
func TestHeadRewriterSplitWrites(t *testing.T) {
	raw := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 2\r\n\r\nhi"
	want := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nb: 2\r\na: 1\r\nContent-Length: 2\r\n\r\nhi"
	for split := 1; split < len(raw); split++ {
		var h headRewriter
		h.expect("b\na\n")
		var out bytes.Buffer
		for _, part := range []string{raw[:split], raw[split:]} {
			if n, err := h.write(&out, []byte(part)); err != nil || n != len(part) {
				t.Fatalf("split %d: write = %d, %v", split, n, err)
			}
		}
		if out.String() != want {
			t.Fatalf("split %d:\ngot  %q\nwant %q", split, out.String(), want)
		}
		// Later heads pass through until the next expect.
		out.Reset()
		_, _ = h.write(&out, []byte("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"))
		if !strings.HasPrefix(out.String(), "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2") {
			t.Fatalf("split %d: unarmed write changed: %q", split, out.String())
		}
	}
}

func TestHeadFieldNames(t *testing.T) {
	got := string(appendFieldNames(nil, []byte("HTTP/1.1 200 OK\r\nx-A: 1\r\nset-cookie: a\r\n folded\r\nSet-Cookie: b\r\n\r\n")))
	if want := "x-A\nset-cookie\nSet-Cookie\n"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

// FuzzReorderHead checks that rewriting only permutes lines and changes
// the case of names: the same bytes, case-folded and sorted by line, and
// the same start line.
func FuzzReorderHead(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\n\r\n", "x-a\nhost\nX-a\n")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "content-length\ncontent-length\n")
	f.Fuzz(func(t *testing.T, head, names string) {
		out := string(reorderHead(nil, []byte(head), names))
		if len(out) != len(head) && !strings.HasSuffix(head, "\r\n\r\n") {
			return // not a complete head: passed through or cut
		}
		if len(out) != len(head) {
			t.Fatalf("length %d -> %d: %q -> %q", len(head), len(out), head, out)
		}
		sorted := func(s string) string {
			l := strings.Split(strings.ToLower(s), "\n")
			slices.Sort(l)
			return strings.Join(l, "\n")
		}
		if sorted(out) != sorted(head) {
			t.Fatalf("lines changed: %q -> %q", head, out)
		}
		if first, _, _ := strings.Cut(head, "\n"); !strings.HasPrefix(out, first) {
			t.Fatalf("start line changed: %q -> %q", head, out)
		}
	})
}
