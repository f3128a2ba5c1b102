package h2

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// encodeBlock returns the HPACK encoding of name/value pairs with a fresh
// encoder's table (the peer's encoder must not be used for it).
func encodeBlock(enc *hpack.Encoder, buf interface{ Bytes() []byte }, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return buf.Bytes()
}

// The server decodes header blocks itself (headerBlockReader): a block
// split over CONTINUATION frames is one request, and a block that cannot
// be decoded or arrives out of order ends the connection with the code
// RFC 9113 names.
func TestServerHeaderBlocks(t *testing.T) {
	env := startServer(t, okHandler())
	t.Run("split over CONTINUATION", func(t *testing.T) {
		rc := dialRaw(t, env.addr)
		rc.hbuf.Reset()
		block := encodeBlock(rc.henc, &rc.hbuf, append(rawGet, "x-a", "1", "x-b", "2")...)
		third := len(block) / 3
		if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:third], EndStream: true}); err != nil {
			t.Fatal(err)
		}
		if err := rc.fr.WriteContinuation(1, false, block[third:2*third]); err != nil {
			t.Fatal(err)
		}
		if err := rc.fr.WriteContinuation(1, true, block[2*third:]); err != nil {
			t.Fatal(err)
		}
		h := rc.readUntil(func(f any) bool { h, ok := f.(*rawHeaders); return ok && h.id == 1 }).(*rawHeaders)
		if h.fields[":status"] != "200" {
			t.Fatalf("response %v", h.fields)
		}
		// The decoder's table is in step: the next request reuses it.
		rc.writeHeaders(3, true, append(rawGet, "x-a", "1")...)
		h = rc.readUntil(func(f any) bool { h, ok := f.(*rawHeaders); return ok && h.id == 3 }).(*rawHeaders)
		if h.fields[":status"] != "200" {
			t.Fatalf("second response %v", h.fields)
		}
	})
	for _, tt := range []struct {
		name string
		send func(rc *rawClient)
		want http2.ErrCode
	}{
		{"index beyond the table", func(rc *rawClient) {
			_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0x7f}, EndStream: true, EndHeaders: true})
		}, http2.ErrCodeCompression},
		{"block ends inside a field", func(rc *rawClient) {
			_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x00, 0x05, 'a'}, EndStream: true, EndHeaders: true})
		}, http2.ErrCodeCompression},
		{"CONTINUATION without HEADERS", func(rc *rawClient) {
			_ = rc.fr.WriteContinuation(1, true, []byte{0x82})
		}, http2.ErrCodeProtocol},
		{"other frame inside a block", func(rc *rawClient) {
			_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndStream: true})
			_ = rc.fr.WritePing(false, [8]byte{})
		}, http2.ErrCodeProtocol},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, env.addr)
			tt.send(rc)
			got := rc.readUntil(isGoAway).(*rawGoAway)
			if got.code != tt.want {
				t.Errorf("GOAWAY %v, want %v", got.code, tt.want)
			}
		})
	}
	t.Run("pseudo-header field after a regular one", func(t *testing.T) {
		rc := dialRaw(t, env.addr)
		rc.writeHeaders(1, true, ":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/", ":authority", "a")
		if got := rc.readUntil(isRST).(*rawRST); got.id != 1 || got.code != http2.ErrCodeProtocol {
			t.Errorf("RST_STREAM %+v, want stream 1 PROTOCOL_ERROR", got)
		}
	})
}

// The client decodes response header blocks itself: a block split over
// CONTINUATION frames is one response with every field, and one that
// cannot be decoded ends the connection with COMPRESSION_ERROR.
func TestClientHeaderBlocks(t *testing.T) {
	t.Run("split over CONTINUATION", func(t *testing.T) {
		addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
			id, err := p.awaitRequest()
			if err != nil {
				return err
			}
			p.hbuf.Reset()
			block := encodeBlock(p.henc, &p.hbuf, ":status", "200", "x-a", "1", "x-b", "2", "content-length", "0")
			half := len(block) / 2
			if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:half], EndStream: true}); err != nil {
				return err
			}
			if err := p.fr.WriteContinuation(id, true, block[half:]); err != nil {
				return err
			}
			return p.flush()
		})
		tr := &Transport{}
		defer tr.Close()
		resp, err := clientRawGet(tr, addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-A") != "1" || resp.Header.Get("X-B") != "2" {
			t.Fatalf("status %d header %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("index beyond the table", func(t *testing.T) {
		got := make(chan http2.ErrCode, 1)
		addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
			id, err := p.awaitRequest()
			if err != nil {
				return err
			}
			if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0xff, 0x7f}, EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return p.reportGoAway(got)
		})
		tr := &Transport{}
		defer tr.Close()
		if resp, err := clientRawGet(tr, addr); err == nil {
			resp.Body.Close()
			t.Fatal("undecodable response accepted")
		}
		if code := <-got; code != http2.ErrCodeCompression {
			t.Errorf("GOAWAY %v, want COMPRESSION_ERROR", code)
		}
	})
}

// FuzzHeaderBlockReader reads arbitrary frames as a connection's reader
// does: no input may panic, and a block that decodes has valid fields,
// pseudo-header fields first, within the list size limit.
func FuzzHeaderBlockReader(f *testing.F) {
	var seed bytes.Buffer
	fr := http2.NewFramer(&seed, nil)
	var hbuf bytes.Buffer
	block := encodeBlock(hpack.NewEncoder(&hbuf), &hbuf, append(rawGet, "x-a", "1")...)
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:4], EndStream: true})
	_ = fr.WriteContinuation(1, true, block[4:])
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 2, 1, 5, 0, 0, 0, 1, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 256
		fr := http2.NewFramer(nil, bytes.NewReader(in))
		r := newHeaderBlockReader(fr, limit)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			hf, ok := f.(*http2.HeadersFrame)
			if !ok {
				continue
			}
			mh, err := r.read(hf)
			if err != nil {
				return
			}
			size, regular := uint32(0), false
			for _, fld := range mh.Fields {
				size += fld.Size()
				pseudo := strings.HasPrefix(fld.Name, ":")
				if pseudo && regular {
					t.Fatalf("pseudo-header field %q after a regular one", fld.Name)
				}
				regular = regular || !pseudo
				if !pseudo && !validWireFieldName(fld.Name) || !httpguts.ValidHeaderFieldValue(fld.Value) {
					t.Fatalf("invalid field %q: %q", fld.Name, fld.Value)
				}
			}
			if size > 2*limit { // headers and trailer announcements have a limit each
				t.Fatalf("fields of %d bytes accepted over a limit of %d", size, limit)
			}
		}
	})
}

// TestLiteralFieldsDecode: fields the client writes as literals without
// indexing decode with hpack, lengths at the prefix boundaries included,
// and leave the peer's dynamic table as it was.
func TestLiteralFieldsDecode(t *testing.T) {
	for _, n := range []int{0, 1, 126, 127, 128, 255, 300, 20000} {
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		_ = enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
		value := strings.Repeat("v", n)
		appendLiteralField(&b, "traceparent", value)
		_ = enc.WriteField(hpack.HeaderField{Name: "x-after", Value: "1"})
		var got []hpack.HeaderField
		dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f) })
		if _, err := dec.Write(b.Bytes()); err != nil {
			t.Fatalf("length %d: %v", n, err)
		}
		if err := dec.Close(); err != nil {
			t.Fatalf("length %d: %v", n, err)
		}
		if len(got) != 3 || got[1].Name != "traceparent" || got[1].Value != value || got[2].Name != "x-after" {
			t.Fatalf("length %d: decoded %d fields %q", n, len(got), got)
		}
		// Only x-after entered the table: the next index past it is empty.
		if _, err := dec.DecodeFull([]byte{0x80 | 63}); err == nil {
			t.Fatalf("length %d: the literal entered the dynamic table", n)
		}
	}
}
