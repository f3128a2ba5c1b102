package embedded

import (
	"fmt"
	"testing"

	"github.com/meshscope/meshscope/collector/spans"
)

func sampleSpan() spans.Span {
	return spans.Span{
		TraceID: spans.TraceID{1, 2, 3}, SpanID: spans.SpanID{4, 5}, ParentSpanID: spans.SpanID{6},
		TraceState: "a=b", Service: "svc", Name: "op", Kind: spans.KindClient,
		StartUnixNano: 1, EndUnixNano: 2, StatusCode: spans.StatusError, StatusMessage: "m",
		Attrs:    []spans.Attr{spans.IntAttr("i", -1), spans.FloatAttr("f", 1.5), spans.BoolAttr("b", true), {Key: "x", Type: spans.TypeBytes, Str: "\x00"}},
		Resource: []spans.Attr{spans.StringAttr("r", "v")},
		Scope:    "s", ScopeVersion: "1",
		Events: []spans.Event{{TimeUnixNano: 3, Name: "e", Attrs: []spans.Attr{spans.StringAttr("k", "v")}}},
		Links:  []spans.Link{{TraceID: spans.TraceID{9}, SpanID: spans.SpanID{8}, Attrs: []spans.Attr{spans.BoolAttr("l", false)}}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	in := sampleSpan()
	b := appendSpan(nil, &in)
	var out spans.Span
	rest, err := decodeSpan(b, &out)
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode: %v rest %d", err, len(rest))
	}
	if fmt.Sprintf("%#v", in) != fmt.Sprintf("%#v", out) {
		t.Fatalf("round trip:\n%#v\n%#v", in, out)
	}
	for i := range b {
		if _, err := decodeSpan(b[:i], &out); err == nil {
			t.Fatalf("truncated record of %d/%d bytes decoded without error", i, len(b))
		}
	}
}

// FuzzDecodeSpan: arbitrary bytes never crash the decoder, and whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeSpan(f *testing.F) {
	s := sampleSpan()
	f.Add(appendSpan(nil, &s))
	f.Add([]byte{spanFormatVersion})
	f.Fuzz(func(t *testing.T, data []byte) {
		var sp spans.Span
		rest, err := decodeSpan(data, &sp)
		if err != nil {
			return
		}
		enc := appendSpan(nil, &sp)
		if string(enc) != string(data[:len(data)-len(rest)]) {
			// Non-canonical varints or bool bytes may differ; decoding the
			// re-encoding must give the same span.
			var again spans.Span
			if _, err := decodeSpan(enc, &again); err != nil || fmt.Sprintf("%#v", again) != fmt.Sprintf("%#v", sp) {
				t.Fatalf("re-encoding does not round trip: %v", err)
			}
		}
	})
}

// TestSpanAttrHashes: hashing a record in place gives the hashes of the
// decoded span, and fails exactly where decoding fails.
func TestSpanAttrHashes(t *testing.T) {
	full := sampleSpan()
	bare := spans.Span{Service: "s", Name: "n"}
	strs := spans.Span{Attrs: []spans.Attr{spans.StringAttr("http.route", "/a/{id}"), spans.StringAttr("", "")}, Resource: []spans.Attr{spans.IntAttr("n", 1<<40)}}
	for _, tc := range []struct {
		name string
		sp   spans.Span
	}{{"every type, events and links", full}, {"no attributes", bare}, {"strings", strs}} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendSpan(nil, &tc.sp)
			b = append(b, 0xee) // the next record's first byte
			got, rest, err := spanAttrHashes([]uint64{7}, b)
			if err != nil || len(rest) != 1 {
				t.Fatalf("spanAttrHashes: %v, rest %d", err, len(rest))
			}
			var dec spans.Span
			if _, err := decodeSpan(b, &dec); err != nil {
				t.Fatal(err)
			}
			want := appendAttrHashes([]uint64{7}, &dec)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("hashes %v, want %v", got, want)
			}
			for i := range len(b) - 1 {
				_, _, herr := spanAttrHashes(nil, b[:i])
				_, derr := decodeSpan(b[:i], &dec)
				if (herr == nil) != (derr == nil) {
					t.Fatalf("record cut at %d/%d: hashing error %v, decoding error %v", i, len(b)-1, herr, derr)
				}
			}
			// The same span in a span block (format 2).
			raw, _ := blockRecord([]spans.Span{tc.sp, bare})
			hr, err := readRawRecord(raw, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := hr.hashes[:hr.hashEnd[0]]; fmt.Sprint(got) != fmt.Sprint(want[1:]) {
				t.Fatalf("block hashes %v, want %v", got, want[1:])
			}
			for i := range raw {
				_, herr := readRawRecord(raw[:i], true)
				_, derr := readRawRecord(raw[:i], false)
				if herr == nil || derr == nil {
					t.Fatalf("block record cut at %d/%d: hashing error %v, decoding error %v", i, len(raw), herr, derr)
				}
			}
		})
	}
}
