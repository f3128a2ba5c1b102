package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestAddrs: the addresses are distinct, bindable, and outside the
// kernel's ephemeral range when that range leaves room below it.
func TestAddrs(t *testing.T) {
	addrs, err := Addrs(20)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 20 {
		t.Fatalf("got %d addresses, want 20", len(addrs))
	}
	lo, hi := belowEphemeral()
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Errorf("%s returned twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if hi > lo && (port < lo || port >= hi) {
			t.Errorf("%s: port outside [%d, %d)", a, lo, hi)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s is not free: %v", a, err)
			continue
		}
		l.Close()
	}
}

// TestAddrsSkipsTaken: a port in use is never returned.
func TestAddrsSkipsTaken(t *testing.T) {
	lo, hi := belowEphemeral()
	if hi-lo < 2 {
		t.Skip("no room below the ephemeral range here")
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	taken := map[string]bool{}
	for p := lo; p < lo+200 && p < hi; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		held = append(held, l)
		taken[l.Addr().String()] = true
	}
	for range 50 {
		addrs, err := Addrs(5)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if taken[a] {
				t.Fatalf("%s is held by the test but was returned", a)
			}
		}
	}
}
