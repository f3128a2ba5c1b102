package auth

import (
	"fmt"
	"net"
	"net/netip"
)

// CheckBind refuses a non-loopback listen address when auth is off and
// --insecure is not given. flag names the address's flag for the error;
// "off" and "" pass.
func CheckBind(flag, addr string, authOn, insecure bool) error {
	if authOn || insecure || addr == "" || addr == "off" {
		return nil
	}
	if IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("--%s %s is not a loopback address and the server runs without --auth-file: anyone who can reach it could read and change the mesh; give --auth-file FILE, or --insecure to bind it anyway", flag, addr)
}

// IsLoopback reports whether a host:port listens on loopback only. An
// empty host or an unspecified address (0.0.0.0, ::) is every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false // a name may resolve anywhere
	}
	return ip.IsLoopback()
}
