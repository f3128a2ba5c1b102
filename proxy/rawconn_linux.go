//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
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

func (r *rawTCPConn) writeSome(fd uintptr) bool {
	for r.wn < len(r.wp) {
		p := r.wp[r.wn:]
		if len(p) > maxRawIO {
			p = p[:maxRawIO]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
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
	r.wp, r.wn, r.werr = p, 0, 0
	err := r.rc.Write(r.writeFn)
	n, errno := r.wn, r.werr
	r.wp = nil
	r.wmu.Unlock()
	if err != nil {
		return n, r.opError("write", err)
	}
	if errno != 0 {
		return n, r.opError("write", os.NewSyscallError("write", errno))
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
