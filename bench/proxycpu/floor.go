package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/meshscope/meshscope/proxy"
)

// serveFloor runs the -floor comparator: a minimal HTTP/1.1 keep-alive
// forwarder from listen to up. Each client connection gets its own
// upstream connection; request heads pass through unchanged (bodyless
// requests only) and responses are framed by Content-Length only. Its
// socket I/O is the proxy's (raw system calls on the non-blocking socket,
// waiting in the runtime's poller), and it does nothing else: no header
// parsing, telemetry, pooling, timeouts or policies. What it costs per
// request is the floor of a goroutine-per-connection Go forwarder on the
// machine, against which the proxy's own per-request work shows.
func serveFloor(listen, up string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			if err := forwardFloor(proxy.RawSocketIO(c), up); err != nil && err != io.EOF {
				fmt.Fprintln(os.Stderr, "floor:", err)
			}
		}()
	}
}

func forwardFloor(c net.Conn, up string) error {
	defer c.Close()
	uc, err := net.Dial("tcp", up)
	if err != nil {
		return err
	}
	u := proxy.RawSocketIO(uc)
	defer u.Close()
	cr, ur := bufio.NewReaderSize(c, 8192), bufio.NewReaderSize(u, 8192)
	for {
		head, err := readHead(cr)
		if err != nil {
			return err
		}
		if _, err := u.Write(head); err != nil {
			return err
		}
		_, _ = cr.Discard(len(head))
		resp, err := readHead(ur)
		if err != nil {
			return err
		}
		n := len(resp) + contentLength(resp)
		if ur.Buffered() >= n { // the whole response arrived: one write
			b, _ := ur.Peek(n)
			if _, err := c.Write(b); err != nil {
				return err
			}
			_, _ = ur.Discard(n)
			continue
		}
		if _, err := c.Write(resp); err != nil {
			return err
		}
		_, _ = ur.Discard(len(resp))
		if _, err := io.CopyN(c, ur, int64(n-len(resp))); err != nil {
			return err
		}
	}
}

// readHead returns the message head at the start of r's buffer, through
// its empty line, without consuming it.
func readHead(r *bufio.Reader) ([]byte, error) {
	for {
		buf, _ := r.Peek(r.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if len(buf) == r.Size() {
			return nil, fmt.Errorf("head longer than %d bytes", r.Size())
		}
		if _, err := r.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// contentLength returns the Content-Length of a response head (0 when
// absent).
func contentLength(head []byte) int {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Content-Length")) {
			n, _ := strconv.Atoi(string(bytes.TrimSpace(value)))
			return n
		}
	}
	return 0
}
