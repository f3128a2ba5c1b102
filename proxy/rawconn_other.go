//go:build !linux

package proxy

import "net"

// rawIO returns c: raw socket I/O is used on Linux only.
func rawIO(c net.Conn) net.Conn { return c }
