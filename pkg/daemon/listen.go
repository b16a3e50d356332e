package daemon

import (
	"fmt"
	"net"
	"net/netip"
)

// ListenAdmin opens the admin listener. An address beyond loopback is refused unless a token
// protects it: the admin protocol changes where traffic goes.
func ListenAdmin(addr, token string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen address %q: %w", addr, err)
	}
	if token == "" && !isLoopback(host) {
		return nil, fmt.Errorf("admin listen address %q is not loopback: set an admin token (admin.token or --token) to expose it", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return ln, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
