package h2

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/net/http2"
)

// readLoop is the connection's only reader: it applies every frame the
// peer sends and closes the connection when reading fails.
func (cc *clientConn) readLoop() {
	err := cc.readFrames()
	cc.close(err)
}

func (cc *clientConn) readFrames() error {
	for {
		f, err := cc.fr.ReadFrame()
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			var mh *http2.MetaHeadersFrame
			if mh, err = cc.hbr.read(hf); err == nil {
				f = mh
			}
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.resetStream(se.StreamID, se.Code, fmt.Errorf("h2: stream %d from %s: %w", se.StreamID, cc.addr, err))
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return cc.connError(clientConnError{code: http2.ErrCode(ce), msg: err.Error()})
			}
			return fmt.Errorf("h2: reading from %s: %w", cc.addr, err)
		}
		if !cc.sawSettings {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				return cc.connError(clientConnError{code: http2.ErrCodeProtocol, msg: "first frame is not SETTINGS"})
			}
			cc.sawSettings = true
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			err = cc.onHeaders(f)
		case *http2.DataFrame:
			err = cc.onData(f)
		case *http2.RSTStreamFrame:
			err = cc.onRSTStream(f)
		case *http2.SettingsFrame:
			err = cc.onSettings(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				cc.writeCtl(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
			}
		case *http2.GoAwayFrame:
			cc.onGoAway(f)
		case *http2.WindowUpdateFrame:
			err = cc.onWindowUpdate(f)
		case *http2.PushPromiseFrame:
			// We advertised SETTINGS_ENABLE_PUSH 0 (RFC 9113 §8.4).
			err = clientConnError{code: http2.ErrCodeProtocol, msg: "PUSH_PROMISE with push disabled"}
		}
		if err != nil {
			var ce clientConnError
			if errors.As(err, &ce) {
				return cc.connError(ce)
			}
			return err
		}
	}
}

// connError sends GOAWAY with the error's code and returns it, for the
// reader to close the connection.
func (cc *clientConn) connError(ce clientConnError) error {
	cc.writeCtl(func(fr *http2.Framer) error {
		cc.sentAway = true
		return fr.WriteGoAway(0, ce.code, []byte(ce.msg))
	})
	return fmt.Errorf("h2: connection to %s: %w", cc.addr, ce)
}

// idleStreamLocked classifies a stream id that is not in cc.streams: a stream we
// opened earlier (closed now) or one never opened (idle), which is a
// connection error for most frames (RFC 9113 §5.1).
func (cc *clientConn) idleStreamLocked(id uint32) bool {
	return id%2 == 0 || id >= cc.nextID
}

// unknownStreamLocked answers a frame on stream id, which is not open: a
// connection PROTOCOL_ERROR when id was never opened, nil (the frame is
// dropped) for a stream we reset (cc.mu held).
func (cc *clientConn) unknownStreamLocked(id uint32, frame string) error {
	if cc.idleStreamLocked(id) {
		return clientConnError{code: http2.ErrCodeProtocol, msg: fmt.Sprintf("%s on idle stream %d", frame, id)}
	}
	return nil
}

// resetStream fails stream id with err and sends RST_STREAM with code.
func (cc *clientConn) resetStream(id uint32, code http2.ErrCode, err error) {
	cc.mu.Lock()
	cs := cc.streams[id]
	var connInc uint32
	if cs != nil {
		cs.failLocked(err)
		connInc = cs.discardLocked()
		cs.removeLocked()
	}
	cc.mu.Unlock()
	cc.writeRST(id, code, connInc)
	if cs != nil {
		cs.wake()
		cs.stopBody()
	}
}

func (cc *clientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if f.Truncated {
		cc.resetStream(id, http2.ErrCodeCancel, fmt.Errorf("h2: response header list from %s exceeds %d bytes", cc.addr, cc.t.maxHeaderBytes()))
		return nil
	}
	cc.mu.Lock()
	cs := cc.streams[id]
	if cs == nil {
		err := cc.unknownStreamLocked(id, "HEADERS")
		cc.mu.Unlock()
		// nil for a stream we reset: the Framer kept the HPACK state in step.
		return err
	}
	if cs.remoteClosed {
		cc.mu.Unlock()
		cc.resetStream(id, http2.ErrCodeStreamClosed, fmt.Errorf("h2: HEADERS after END_STREAM on stream %d", id))
		return nil
	}
	if cs.resp == nil {
		resp, err := clientParseResponse(f.Fields)
		if err == nil && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				err = errors.New("h2: 101 Switching Protocols on HTTP/2")
			} else if f.StreamEnded() {
				err = fmt.Errorf("h2: END_STREAM on a %d response", resp.StatusCode)
			} else {
				// 100 Continue, 103 Early Hints, ...: wait for the final.
				cc.mu.Unlock()
				return nil
			}
		}
		if err != nil {
			cc.mu.Unlock()
			cc.resetStream(id, http2.ErrCodeProtocol, err)
			return nil
		}
		resp.Request = cs.req
		cs.declaredLen = resp.ContentLength
		if f.StreamEnded() {
			if cs.declaredLen > 0 && !cs.isHead {
				cc.mu.Unlock()
				cc.resetStream(id, http2.ErrCodeProtocol, fmt.Errorf("h2: response without body declares content-length %d", cs.declaredLen))
				return nil
			}
			if !cs.isHead {
				resp.ContentLength = 0
			}
			resp.Body = http.NoBody
			cs.remoteClosed = true
			cs.readErr = io.EOF
			cs.resp = resp
			cs.maybeFinishLocked()
		} else {
			if cs.isHead {
				cs.declaredLen = -1 // HEAD: content-length describes a GET
			}
			resp.Body = &clientBody{cs: cs}
			cs.resp = resp
		}
		cc.mu.Unlock()
		cs.wake()
		return nil
	}
	// Trailers.
	var err error
	if !f.StreamEnded() {
		err = errors.New("h2: trailing HEADERS without END_STREAM")
	} else if cs.declaredLen >= 0 && cs.recvLen != cs.declaredLen {
		err = fmt.Errorf("h2: response body of %d bytes, content-length %d", cs.recvLen, cs.declaredLen)
	} else {
		// Kept aside: the caller may be reading resp.Trailer now; Body's
		// Read moves them there on its goroutine when it returns io.EOF.
		cs.trailer = make(http.Header, len(f.Fields))
		err = clientAddTrailers(cs.trailer, f.Fields)
	}
	if err != nil {
		cc.mu.Unlock()
		cc.resetStream(id, http2.ErrCodeProtocol, err)
		return nil
	}
	cs.remoteEndLocked()
	cc.mu.Unlock()
	cs.wake()
	return nil
}

func (cc *clientConn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	cc.mu.Lock()
	if n > cc.recvWindow {
		cc.mu.Unlock()
		return clientConnError{code: http2.ErrCodeFlowControl, msg: "DATA beyond the connection window"}
	}
	cc.recvWindow -= n
	cs := cc.streams[id]
	var serr error
	code := http2.ErrCodeProtocol
	switch {
	case cs == nil:
		if err := cc.unknownStreamLocked(id, "DATA"); err != nil {
			cc.mu.Unlock()
			return err
		}
		// A stream we reset: the bytes still count against the
		// connection window, so give them back.
		cc.recvUnacked += n
		connInc := cc.takeConnUpdateLocked()
		cc.mu.Unlock()
		if connInc > 0 {
			cc.writeWindowUpdates(0, 0, connInc)
		}
		return nil
	case cs.resp == nil:
		serr = fmt.Errorf("h2: DATA before response headers on stream %d", id)
	case cs.remoteClosed:
		code = http2.ErrCodeStreamClosed
		serr = fmt.Errorf("h2: DATA after END_STREAM on stream %d", id)
	case n > cs.recvWindow:
		code = http2.ErrCodeFlowControl
		serr = fmt.Errorf("h2: DATA beyond the window of stream %d", id)
	}
	if serr != nil {
		cc.recvUnacked += n
		cc.mu.Unlock()
		cc.resetStream(id, code, serr)
		return nil
	}
	cs.recvWindow -= n
	data := f.Data()
	// Padding is consumed at once.
	if pad := n - int64(len(data)); pad > 0 {
		cc.recvUnacked += pad
		cs.recvUnacked += pad
	}
	cs.recvLen += int64(len(data))
	if cs.declaredLen >= 0 && (cs.recvLen > cs.declaredLen || f.StreamEnded() && cs.recvLen != cs.declaredLen) {
		cc.recvUnacked += int64(len(data))
		cc.mu.Unlock()
		cc.resetStream(id, http2.ErrCodeProtocol, fmt.Errorf("h2: response body of stream %d does not match content-length %d", id, cs.declaredLen))
		return nil
	}
	if cs.bodyClosed {
		cc.recvUnacked += int64(len(data))
	} else if len(data) > 0 {
		if cs.roff == len(cs.rbuf) {
			cs.rbuf, cs.roff = cs.rbuf[:0], 0
		}
		cs.rbuf = append(cs.rbuf, data...)
	}
	if f.StreamEnded() {
		cs.remoteEndLocked()
	}
	cc.mu.Unlock()
	cs.wake()
	return nil
}

func (cc *clientConn) onRSTStream(f *http2.RSTStreamFrame) error {
	id := f.StreamID
	cc.mu.Lock()
	cs := cc.streams[id]
	if cs == nil {
		err := cc.unknownStreamLocked(id, "RST_STREAM")
		cc.mu.Unlock()
		return err
	}
	switch {
	case f.ErrCode == http2.ErrCodeNo && cs.remoteClosed:
		// The response is complete; the peer only wants no more body.
		cs.sendErr = errClientStopSend
	case f.ErrCode == http2.ErrCodeRefusedStream:
		cs.failLocked(&clientRetryableError{fmt.Errorf("h2: stream %d refused by %s: %w", id, cc.addr, http2.StreamError{StreamID: id, Code: f.ErrCode})})
	default:
		cs.failLocked(fmt.Errorf("h2: stream %d reset by %s: %w", id, cc.addr, http2.StreamError{StreamID: id, Code: f.ErrCode}))
	}
	cs.remoteClosed = true
	cs.removeLocked()
	cc.mu.Unlock()
	cs.wake()
	cs.stopBody()
	return nil
}

func (cc *clientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var tableSize, frameSize uint32
	var haveTable bool
	cc.mu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams = s.Val
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - cc.initWindow
			for _, cs := range cc.streams {
				cs.sendWindow += delta
				if cs.sendWindow > clientMaxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			cc.initWindow = int64(s.Val)
		case http2.SettingMaxFrameSize:
			frameSize = s.Val
		case http2.SettingHeaderTableSize:
			tableSize, haveTable = s.Val, true
		}
		return nil
	})
	cc.cond.Broadcast()
	cc.mu.Unlock()
	if err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return clientConnError{code: http2.ErrCode(ce), msg: "invalid SETTINGS"}
		}
		return err
	}
	cc.writeCtl(func(fr *http2.Framer) error {
		if frameSize != 0 {
			cc.wMaxFrame = frameSize
		}
		if haveTable {
			cc.henc.SetMaxDynamicTableSizeLimit(tableSize)
		}
		return fr.WriteSettingsAck()
	})
	return nil
}

func (cc *clientConn) onGoAway(f *http2.GoAwayFrame) {
	cc.mu.Lock()
	cc.goAway = true
	var failed []*clientStream
	for id, cs := range cc.streams {
		if id > f.LastStreamID {
			cs.failLocked(&clientRetryableError{fmt.Errorf("h2: stream %d not processed: %s sent GOAWAY (%v, last stream %d)", id, cc.addr, f.ErrCode, f.LastStreamID)})
			failed = append(failed, cs)
		}
	}
	for _, cs := range failed {
		cs.removeLocked()
	}
	drained := len(cc.streams) == 0 && cc.reserved == 0
	cc.mu.Unlock()
	for _, cs := range failed {
		cs.wake()
		cs.stopBody()
	}
	cc.t.removeConn(cc)
	if drained {
		cc.close(fmt.Errorf("h2: %s sent GOAWAY (%v)", cc.addr, f.ErrCode))
	}
}

func (cc *clientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	id := f.StreamID
	cc.mu.Lock()
	if id == 0 {
		cc.sendWindow += inc
		overflow := cc.sendWindow > clientMaxWindow
		cc.cond.Broadcast()
		cc.mu.Unlock()
		if overflow {
			return clientConnError{code: http2.ErrCodeFlowControl, msg: "connection window overflow"}
		}
		return nil
	}
	cs := cc.streams[id]
	if cs == nil {
		err := cc.unknownStreamLocked(id, "WINDOW_UPDATE")
		cc.mu.Unlock()
		return err
	}
	cs.sendWindow += inc
	overflow := cs.sendWindow > clientMaxWindow
	cc.cond.Broadcast()
	cc.mu.Unlock()
	if overflow {
		cc.resetStream(id, http2.ErrCodeFlowControl, fmt.Errorf("h2: window overflow on stream %d", id))
	}
	return nil
}
