package proxy

import (
	"io"
	"net"
)

// h1WriteBuffer is the owned loop's write buffer: a response head and a
// body that fit leave in one system call.
const h1WriteBuffer = 4096

// pairWriter writes two byte slices in one system call (writev): what a
// buffer holds and a write too large to join it.
type pairWriter interface {
	writePair(a, b []byte) (int, error)
}

// pairWriterOf returns c's pairWriter, looking under a peekedConn (which
// only reads differently); nil when c has none.
func pairWriterOf(c net.Conn) pairWriter {
	if pc, ok := c.(*peekedConn); ok {
		c = pc.Conn
	}
	pw, _ := c.(pairWriter)
	return pw
}

// h1Out buffers the bytes an owned connection writes to its client, as a
// bufio.Writer of h1WriteBuffer bytes does, except that a write larger
// than the free space leaves together with what is held in one writev
// (when the connection has a pairWriter) instead of as a full buffer's
// write followed by its own: a response head with a body of more than the
// free space (a 16 KB response read in two parts from the upstream) costs
// one system call, not two. Errors are sticky, as bufio's.
type h1Out struct {
	w    io.Writer
	pair pairWriter // w's, nil when it has none
	buf  []byte     // held bytes; cap is the buffer size
	err  error
}

func newH1Out(c net.Conn, size int) h1Out {
	return h1Out{w: c, pair: pairWriterOf(c), buf: make([]byte, 0, size)}
}

// Write holds p or writes it out with what is held.
func (o *h1Out) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	switch {
	case len(o.buf)+len(p) <= cap(o.buf):
		o.buf = append(o.buf, p...)
		return len(p), nil
	case len(o.buf) == 0:
		n, err := o.w.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		o.err = err
		return n, err
	case o.pair != nil:
		held := len(o.buf)
		n, err := o.pair.writePair(o.buf, p)
		if err == nil && n < held+len(p) {
			err = io.ErrShortWrite
		}
		o.buf = o.buf[:0]
		if o.err = err; err != nil {
			return max(0, n-held), err
		}
		return len(p), nil
	}
	// As bufio: fill the buffer, write it, then the rest.
	k := copy(o.buf[len(o.buf):cap(o.buf)], p)
	o.buf = o.buf[:cap(o.buf)]
	if err := o.Flush(); err != nil {
		return 0, err
	}
	n, err := o.Write(p[k:])
	return k + n, err
}

// Flush writes what is held.
func (o *h1Out) Flush() error {
	if o.err != nil {
		return o.err
	}
	if len(o.buf) == 0 {
		return nil
	}
	n, err := o.w.Write(o.buf)
	if err == nil && n < len(o.buf) {
		err = io.ErrShortWrite
	}
	o.buf = o.buf[:0]
	o.err = err
	return err
}
