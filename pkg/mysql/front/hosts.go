package front

import (
	"net"
	"strings"
)

// HostMatches is LIKE-style matching of an account's host against a client's address, or
// a name it resolves to; an account host network/mask matches the addresses in it ('localhost' is the Unix socket's: never a TCP client's address, but
// the name 127.0.0.1 resolves to on a server that resolves names).
func HostMatches(pattern, host string, name bool) bool {
	if pattern == "localhost" && !name {
		return false
	}
	if network, mask, ok := strings.Cut(pattern, "/"); ok {
		return !name && inNetmask(host, network, mask)
	}
	var m func(p, h string) bool
	m = func(p, h string) bool {
		for len(p) > 0 {
			switch p[0] {
			case '%':
				for i := 0; i <= len(h); i++ {
					if m(p[1:], h[i:]) {
						return true
					}
				}
				return false
			case '_':
				if h == "" {
					return false
				}
			default:
				if h == "" || !strings.EqualFold(p[:1], h[:1]) {
					return false
				}
			}
			p, h = p[1:], h[1:]
		}
		return h == ""
	}
	return m(pattern, host)
}

// inNetmask reports whether IPv4 address addr is in network/mask ('192.168.1.0/255.255.255.0',
// an account host of that form).
func inNetmask(addr, network, mask string) bool {
	a, n, m := net.ParseIP(addr).To4(), net.ParseIP(network).To4(), net.ParseIP(mask).To4()
	if a == nil || n == nil || m == nil {
		return false
	}
	for i := range a {
		if a[i]&m[i] != n[i]&m[i] {
			return false
		}
	}
	return true
}
