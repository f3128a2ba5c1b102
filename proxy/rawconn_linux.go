//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// rawTCPConn reads and writes a TCP connection with raw system calls on
// its non-blocking socket, waiting in the poller (deadlines included)
// exactly as net.TCPConn does, but without entering the runtime's
// blocking-syscall state. A read or write of a non-blocking socket never
// blocks, so the runtime has nothing to hand over to another thread; and
// entering that state wakes the runtime's monitor thread when the process
// was idle, which at a moderate request rate (each request arriving at an
// idle proxy) costs a futex wake-up and a few short sleeps of that thread
// per request. Everything else (deadlines, Close, CloseWrite, ReadFrom,
// addresses) is the embedded *net.TCPConn's.
type rawTCPConn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex // serializes Reads: their state is below
	rp     []byte
	rn     int
	rerr   syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex // serializes Writes
	wp      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(uintptr) bool

	// writePair's second slice (under wmu), written after wp in one
	// writev while both have bytes left.
	wq  []byte
	iov [2]syscall.Iovec

	// Set by deferWrite until the next Read: Writes are held and leave
	// inside that Read's wait in the poller (answerFn), under both locks.
	deferred     atomic.Bool
	held         []byte
	writeBlocked bool // the held bytes met a full socket buffer
	answerFn     func(uintptr) bool
}

// maxRawIO caps one read or write system call, as internal/poll does.
const maxRawIO = 1 << 30

// rawIO wraps c's TCP connection (c itself, or the connection under a
// peekedConn) in a rawTCPConn; any other connection is returned as it is.
func rawIO(c net.Conn) net.Conn {
	switch cc := c.(type) {
	case *net.TCPConn:
		if r := newRawTCPConn(cc); r != nil {
			return r
		}
	case *peekedConn:
		if t, ok := cc.Conn.(*net.TCPConn); ok {
			if r := newRawTCPConn(t); r != nil {
				cc.Conn = r
			}
		}
	}
	return c
}

func newRawTCPConn(c *net.TCPConn) *rawTCPConn {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawTCPConn{TCPConn: c, rc: rc}
	r.readFn = r.readOnce
	r.writeFn = r.writeSome
	r.answerFn = r.writeHeldThenRead
	return r
}

func (r *rawTCPConn) readOnce(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rp[0])), uintptr(len(r.rp)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		}
		r.rerr = e
		return true
	}
}

func (r *rawTCPConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRawIO {
		p = p[:maxRawIO]
	}
	if r.deferred.Load() {
		return r.readAnswer(p)
	}
	r.rmu.Lock()
	r.rp, r.rn, r.rerr = p, 0, 0
	err := r.rc.Read(r.readFn)
	n, errno := r.rn, r.rerr
	r.rp = nil
	r.rmu.Unlock()
	if err != nil {
		return 0, r.opError("read", err)
	}
	if errno != 0 {
		return 0, r.opError("read", os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// writeSome writes wp then wq (nil but in writePair), both in one writev
// while both have bytes left; wn counts the bytes of both.
func (r *rawTCPConn) writeSome(fd uintptr) bool {
	for total := len(r.wp) + len(r.wq); r.wn < total; {
		p := r.wp[min(r.wn, len(r.wp)):]
		q := r.wq[max(0, r.wn-len(r.wp)):]
		if len(p) == 0 {
			p, q = q, nil
		}
		p = p[:min(len(p), maxRawIO)]
		q = q[:min(len(q), maxRawIO-len(p))]
		var n uintptr
		var e syscall.Errno
		if len(q) > 0 {
			r.iov[0].Base, r.iov[0].Len = &p[0], uint64(len(p))
			r.iov[1].Base, r.iov[1].Len = &q[0], uint64(len(q))
			n, _, e = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&r.iov[0])), 2)
		} else {
			n, _, e = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		}
		switch e {
		case 0:
			r.wn += int(n)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		}
		r.werr = e
		return true
	}
	return true
}

func (r *rawTCPConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wmu.Lock()
	if r.deferred.Load() {
		r.held = append(r.held, p...)
		r.wmu.Unlock()
		return len(p), nil
	}
	return r.writeLocked(p, nil)
}

// writePair writes a then b in one writev system call (more only when the
// socket's buffer takes part of them), waiting in the poller as Write
// does; n counts the bytes of both written.
func (r *rawTCPConn) writePair(a, b []byte) (int, error) {
	switch {
	case len(b) == 0:
		return r.Write(a)
	case len(a) == 0:
		return r.Write(b)
	}
	r.wmu.Lock()
	return r.writeLocked(a, b)
}

// writeLocked writes p then q (nil for a plain Write) with writeSome,
// waiting in the poller, and releases wmu, which the caller holds.
func (r *rawTCPConn) writeLocked(p, q []byte) (int, error) {
	r.wp, r.wq, r.wn, r.werr = p, q, 0, 0
	err := r.rc.Write(r.writeFn)
	n, errno := r.wn, r.werr
	r.wp, r.wq = nil, nil
	r.iov = [2]syscall.Iovec{}
	r.wmu.Unlock()
	if err != nil {
		return n, r.opError("write", err)
	}
	if errno != 0 {
		call := "write"
		if q != nil {
			call = "writev"
		}
		return n, r.opError("write", os.NewSyscallError(call, errno))
	}
	return n, nil
}

// deferWrite holds the writes until the next Read, which sends them once
// it is registered to wait for the answer and then waits without reading
// first: a request whose answer is read next costs no read system call
// that would only find nothing yet (EAGAIN), as a read right after the
// write does when the peer is another process. An error of the held
// writes is the Read's. Only for a connection whose writes are followed
// by a Read of the same goroutine (an upstream request and its response).
func (r *rawTCPConn) deferWrite() { r.deferred.Store(true) }

// writeHeldThenRead is readAnswer's poller callback: it writes the held
// bytes (wp) and waits, then reads.
func (r *rawTCPConn) writeHeldThenRead(fd uintptr) bool {
	if r.wn < len(r.wp) {
		if !r.writeSome(fd) {
			r.writeBlocked = true // the rest waits for room, outside
			return true
		}
		// Written (or failed). Registered for the answer before the
		// write, so it cannot be missed: wait for it.
		return r.werr != 0
	}
	return r.readOnce(fd)
}

// readAnswer is Read after deferWrite: the held bytes leave, then the
// answer is read.
func (r *rawTCPConn) readAnswer(p []byte) (int, error) {
	r.rmu.Lock()
	r.wmu.Lock()
	r.deferred.Store(false)
	if len(r.held) == 0 {
		r.wmu.Unlock()
		r.rmu.Unlock()
		return r.Read(p)
	}
	r.rp, r.rn, r.rerr = p, 0, 0
	r.wp, r.wn, r.werr, r.writeBlocked = r.held, 0, 0, false
	err := r.rc.Read(r.answerFn)
	n, rerrno, werrno := r.rn, r.rerr, r.werr
	rest, blocked := r.wp[r.wn:], r.writeBlocked
	r.rp, r.wp, r.held = nil, nil, r.held[:0] // rest stays valid: nothing is held again before it is written
	r.wmu.Unlock()
	r.rmu.Unlock()
	switch {
	case werrno != 0:
		return 0, r.opError("write", os.NewSyscallError("write", werrno))
	case err != nil:
		return 0, r.opError("read", err)
	case blocked:
		if _, err := r.Write(rest); err != nil {
			return 0, err
		}
		return r.Read(p)
	case rerrno != 0:
		return 0, r.opError("read", os.NewSyscallError("read", rerrno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// opError reports err as net.TCPConn's Read and Write do: a *net.OpError
// naming the operation and both addresses.
func (r *rawTCPConn) opError(op string, err error) error {
	if oe := (*net.OpError)(nil); errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
}
