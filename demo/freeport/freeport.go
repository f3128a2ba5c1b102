package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
)

// Addrs returns n distinct loopback addresses ("127.0.0.1:port") whose
// ports are free now.
func Addrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	lo, hi := belowEphemeral()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo && tries < 1000 {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" && errors.Is(err, syscall.EADDRINUSE) {
				continue // taken; try another
			}
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// belowEphemeral is the range [lo, hi) that Addrs picks from: up to 10,000
// ports below the first port of /proc/sys/net/ipv4/ip_local_port_range,
// none below 10000. It is empty (lo == hi) when that file cannot be read or
// the range starts too low; Addrs then lets the kernel choose.
func belowEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		return 0, 0
	}
	return max(10000, first-10000), max(10000, first)
}
