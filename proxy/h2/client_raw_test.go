package h2

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientRawPeer is one server-side connection driven frame by frame.
type clientRawPeer struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	bw   *bufio.Writer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

// clientRawServer accepts connections and runs script(i, peer) on the i-th,
// after reading the client preface. The script's error fails the test.
func clientRawServer(t *testing.T, script func(i int, p *clientRawPeer) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	errs := make(chan error, 8)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				p := &clientRawPeer{t: t, conn: c, bw: bufio.NewWriter(c)}
				p.fr = http2.NewFramer(p.bw, c)
				p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				p.henc = hpack.NewEncoder(&p.hbuf)
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
					errs <- fmt.Errorf("preface %q: %v", preface, err)
					return
				}
				if err := script(i, p); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func (p *clientRawPeer) flush() error { return p.bw.Flush() }

// settings sends the server's SETTINGS.
func (p *clientRawPeer) settings(s ...http2.Setting) error {
	if err := p.fr.WriteSettings(s...); err != nil {
		return err
	}
	return p.flush()
}

// next reads frames until one of type T, acknowledging SETTINGS on the way.
func clientRawNext[T http2.Frame](p *clientRawPeer) (T, error) {
	var zero T
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return zero, err
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := p.fr.WriteSettingsAck(); err != nil {
				return zero, err
			}
			if err := p.flush(); err != nil {
				return zero, err
			}
		}
		if v, ok := f.(T); ok {
			return v, nil
		}
	}
}

// awaitRequest sends the server's SETTINGS and returns the stream id of
// the client's first request.
func (p *clientRawPeer) awaitRequest() (uint32, error) {
	if err := p.settings(); err != nil {
		return 0, err
	}
	h, err := clientRawNext[*http2.MetaHeadersFrame](p)
	if err != nil {
		return 0, err
	}
	return h.StreamID, nil
}

// reportGoAway flushes what was written, waits for the client's GOAWAY
// and sends its code to got.
func (p *clientRawPeer) reportGoAway(got chan<- http2.ErrCode) error {
	if err := p.flush(); err != nil {
		return err
	}
	g, err := clientRawNext[*http2.GoAwayFrame](p)
	if err != nil {
		return err
	}
	got <- g.ErrCode
	return nil
}

// headers sends a header block of name/value pairs.
func (p *clientRawPeer) headers(id uint32, end bool, kv ...string) error {
	p.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := p.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
			return err
		}
	}
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		return err
	}
	return p.flush()
}

func clientRawGet(tr *Transport, addr string) (*http.Response, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	return tr.RoundTrip(req)
}

func TestClientProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		// respond misbehaves after the client's HEADERS on stream id.
		respond func(p *clientRawPeer, id uint32) error
		// wantGoAway: the client must answer with GOAWAY of this code;
		// otherwise with RST_STREAM of wantRST on stream id.
		wantGoAway bool
		wantCode   http2.ErrCode
	}{
		{name: "DATA on idle stream", wantGoAway: true, wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				if err := p.fr.WriteData(id+2, true, []byte("x")); err != nil {
					return err
				}
				return p.flush()
			}},
		{name: "DATA before HEADERS", wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				if err := p.fr.WriteData(id, true, []byte("x")); err != nil {
					return err
				}
				return p.flush()
			}},
		{name: "connection-specific field", wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				return p.headers(id, true, ":status", "200", "connection", "close")
			}},
		{name: "uppercase field name", wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				return p.headers(id, true, ":status", "200", "X-Upper", "v")
			}},
		{name: "missing status", wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				return p.headers(id, true, "x-a", "b")
			}},
		{name: "request pseudo-header in response", wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				return p.headers(id, true, ":status", "200", ":path", "/")
			}},
		{name: "body longer than content-length", wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				if err := p.headers(id, false, ":status", "200", "content-length", "1"); err != nil {
					return err
				}
				if err := p.fr.WriteData(id, true, []byte("xy")); err != nil {
					return err
				}
				return p.flush()
			}},
		{name: "PUSH_PROMISE", wantGoAway: true, wantCode: http2.ErrCodeProtocol,
			respond: func(p *clientRawPeer, id uint32) error {
				p.hbuf.Reset()
				_ = p.henc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
				if err := p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: 2, BlockFragment: p.hbuf.Bytes(), EndHeaders: true}); err != nil {
					return err
				}
				return p.flush()
			}},
		{name: "connection window overflow", wantGoAway: true, wantCode: http2.ErrCodeFlowControl,
			respond: func(p *clientRawPeer, id uint32) error {
				if err := p.fr.WriteWindowUpdate(0, 1<<31-1); err != nil {
					return err
				}
				return p.flush()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan http2.Frame, 1)
			addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
				if err := p.settings(); err != nil {
					return err
				}
				h, err := clientRawNext[*http2.MetaHeadersFrame](p)
				if err != nil {
					return err
				}
				if err := tc.respond(p, h.StreamID); err != nil {
					return err
				}
				for {
					f, err := p.fr.ReadFrame()
					if err != nil {
						return fmt.Errorf("waiting for the client's answer: %w", err)
					}
					switch f := f.(type) {
					case *http2.GoAwayFrame, *http2.RSTStreamFrame:
						got <- f
						return nil
					}
				}
			})
			tr := &Transport{}
			defer tr.Close()
			if resp, err := clientRawGet(tr, addr); err == nil {
				// The failure may surface on the body instead.
				_, err = io.ReadAll(resp.Body)
				if err == nil {
					t.Fatal("misbehaving response accepted")
				}
			}
			switch f := (<-got).(type) {
			case *http2.GoAwayFrame:
				if !tc.wantGoAway || f.ErrCode != tc.wantCode {
					t.Fatalf("client sent GOAWAY %v, want goaway=%v code %v", f.ErrCode, tc.wantGoAway, tc.wantCode)
				}
			case *http2.RSTStreamFrame:
				if tc.wantGoAway || f.ErrCode != tc.wantCode {
					t.Fatalf("client sent RST_STREAM %v, want goaway=%v code %v", f.ErrCode, tc.wantGoAway, tc.wantCode)
				}
			}
		})
	}
}

func TestClientFirstFrameMustBeSettings(t *testing.T) {
	got := make(chan http2.ErrCode, 1)
	addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
		if err := p.fr.WritePing(false, [8]byte{}); err != nil {
			return err
		}
		return p.reportGoAway(got)
	})
	tr := &Transport{}
	defer tr.Close()
	if _, err := clientRawGet(tr, addr); err == nil {
		t.Fatal("request succeeded on a connection whose peer did not start with SETTINGS")
	}
	if code := <-got; code != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", code)
	}
}

// TestClientRetriesRefusedStreams: a stream refused by RST_STREAM
// REFUSED_STREAM or by a GOAWAY below its id is retried once on a new
// connection; a second refusal is returned.
func TestClientRetriesRefusedStreams(t *testing.T) {
	refuse := map[string]func(p *clientRawPeer, id uint32) error{
		"REFUSED_STREAM": func(p *clientRawPeer, id uint32) error {
			if err := p.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream); err != nil {
				return err
			}
			return p.flush()
		},
		"GOAWAY": func(p *clientRawPeer, id uint32) error {
			if err := p.fr.WriteGoAway(0, http2.ErrCodeNo, nil); err != nil {
				return err
			}
			return p.flush()
		},
	}
	for name, refuseFn := range refuse {
		for _, refusals := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s x%d", name, refusals), func(t *testing.T) {
				addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
					if err := p.settings(); err != nil {
						return err
					}
					h, err := clientRawNext[*http2.MetaHeadersFrame](p)
					if err != nil {
						return err
					}
					if h.PseudoValue("method") != "POST" {
						return fmt.Errorf("method %q", h.PseudoValue("method"))
					}
					if i < refusals {
						if err := refuseFn(p, h.StreamID); err != nil {
							return err
						}
						// Keep the connection open until the client leaves.
						_, _ = io.Copy(io.Discard, p.conn)
						return nil
					}
					d, err := clientRawNext[*http2.DataFrame](p)
					if err != nil {
						return err
					}
					if string(d.Data()) != "body" {
						return fmt.Errorf("retried body %q", d.Data())
					}
					return p.headers(h.StreamID, true, ":status", "200")
				})
				tr := &Transport{}
				defer tr.Close()
				// A body that cannot be replayed is still retried while
				// unread; this one has GetBody as well.
				req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("body"))
				resp, err := tr.RoundTrip(req)
				if refusals == 1 {
					if err != nil {
						t.Fatalf("retry failed: %v", err)
					}
					resp.Body.Close()
					return
				}
				var rerr *clientRetryableError
				if !errors.As(err, &rerr) {
					t.Fatalf("second refusal: %v, want a refused-stream error", err)
				}
			})
		}
	}
}

func TestClientRespectsPeerFlowControl(t *testing.T) {
	const window = 100
	const size = 1000
	addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
		if err := p.settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window}); err != nil {
			return err
		}
		// A first GET, answered after our SETTINGS, makes sure the client
		// applied them before it sends the POST.
		h, err := clientRawNext[*http2.MetaHeadersFrame](p)
		if err != nil {
			return err
		}
		if err := p.headers(h.StreamID, true, ":status", "200"); err != nil {
			return err
		}
		if _, err := clientRawNext[*http2.MetaHeadersFrame](p); err != nil {
			return err
		}
		var got int
		granted := window
		for got < size {
			d, err := clientRawNext[*http2.DataFrame](p)
			if err != nil {
				return err
			}
			got += len(d.Data())
			if got > granted {
				return fmt.Errorf("client sent %d bytes with a window of %d", got, granted)
			}
			if got == granted && got < size {
				if err := p.fr.WriteWindowUpdate(d.StreamID, 300); err != nil {
					return err
				}
				if err := p.flush(); err != nil {
					return err
				}
				granted += 300
			}
			if d.StreamEnded() {
				if got != size {
					return fmt.Errorf("END_STREAM after %d bytes", got)
				}
				return p.headers(d.StreamID, true, ":status", "200")
			}
		}
		return nil
	})
	tr := &Transport{}
	defer tr.Close()
	resp, err := clientRawGet(tr, addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", bytes.NewReader(make([]byte, size)))
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestClientAnswersPingAndSettings(t *testing.T) {
	addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
		if err := p.settings(); err != nil {
			return err
		}
		if _, err := clientRawNext[*http2.MetaHeadersFrame](p); err != nil {
			return err
		}
		data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
		if err := p.fr.WritePing(false, data); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return err
			}
			if pf, ok := f.(*http2.PingFrame); ok {
				if !pf.IsAck() || pf.Data != data {
					return fmt.Errorf("ping answer ack=%v data=%v", pf.IsAck(), pf.Data)
				}
				break
			}
		}
		if err := p.settings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}); err != nil {
			return err
		}
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return err
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() {
				break
			}
		}
		return p.headers(1, true, ":status", "200")
	})
	tr := &Transport{}
	defer tr.Close()
	resp, err := clientRawGet(tr, addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestClientAppliesWindowSizeChangeToOpenStreams: a stream opened with a
// zero send window starts sending when SETTINGS_INITIAL_WINDOW_SIZE grows.
func TestClientAppliesWindowSizeChangeToOpenStreams(t *testing.T) {
	const size = 1000
	addr := clientRawServer(t, func(i int, p *clientRawPeer) error {
		if err := p.settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
			return err
		}
		h, err := clientRawNext[*http2.MetaHeadersFrame](p)
		if err != nil {
			return err
		}
		if err := p.headers(h.StreamID, true, ":status", "200"); err != nil {
			return err
		}
		h, err = clientRawNext[*http2.MetaHeadersFrame](p)
		if err != nil {
			return err
		}
		if err := p.settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: size}); err != nil {
			return err
		}
		got := 0
		for {
			d, err := clientRawNext[*http2.DataFrame](p)
			if err != nil {
				return err
			}
			got += len(d.Data())
			if got > size {
				return fmt.Errorf("client sent %d bytes with a window of %d", got, size)
			}
			if d.StreamEnded() {
				return p.headers(h.StreamID, true, ":status", "200")
			}
		}
	})
	tr := &Transport{}
	defer tr.Close()
	resp, err := clientRawGet(tr, addr) // the zero window is in force after this
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/", bytes.NewReader(make([]byte, size)))
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
