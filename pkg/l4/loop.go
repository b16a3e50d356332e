package l4

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// ErrLoop is a connection whose backend turned out to be the proxy itself (a target template
// that expanded to the proxy's own address, an upstream server that is one of its listeners):
// it is refused rather than proxied to itself until file descriptors run out.
var ErrLoop = errors.New("proxy loop")

// ownAddrs are the addresses of the listeners a Proxy serves.
type ownAddrs struct {
	mu    sync.Mutex
	addrs map[netip.AddrPort]int
	local map[netip.Addr]bool // the host's addresses, for listeners on every interface
}

// add records a listener's address until the returned function is called.
func (o *ownAddrs) add(a net.Addr) (remove func()) {
	ap, ok := addrPort(a)
	if !ok {
		return func() {}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.addrs == nil {
		o.addrs = make(map[netip.AddrPort]int)
	}
	o.addrs[ap]++
	if ap.Addr().IsUnspecified() && o.local == nil {
		o.local = localAddrs()
	}
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.addrs[ap]--; o.addrs[ap] <= 0 {
			delete(o.addrs, ap)
		}
	}
}

// has reports whether a backend address is one of the listeners: the same address and port, or
// the port of a listener on every interface at one of the host's addresses.
func (o *ownAddrs) has(a net.Addr) bool {
	ap, ok := addrPort(a)
	if !ok {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.addrs[ap] > 0 {
		return true
	}
	for own := range o.addrs {
		if own.Port() == ap.Port() && own.Addr().IsUnspecified() && (ap.Addr().IsLoopback() || o.local[ap.Addr()]) {
			return true
		}
	}
	return false
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := t.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// localAddrs are the host's interface addresses.
func localAddrs() map[netip.Addr]bool {
	out := make(map[netip.Addr]bool)
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
}
