// Package probe is what the event-loop design probes of l4bench (bench/cmd/epollproxy,
// bench/cmd/uringproxy) share: their command line and their listening sockets.
package probe

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one LISTEN=BACKEND argument.
type Mapping struct {
	Listen  string
	Backend netip.AddrPort // IPv4
}

// Args reads the command line of the probe name (LISTEN=BACKEND ...); a wrong one exits with
// its usage.
func Args(name string) []Mapping {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s LISTEN=BACKEND ...\n", name)
		os.Exit(2)
	}
	var maps []Mapping
	for _, a := range os.Args[1:] {
		l, b, ok := strings.Cut(a, "=")
		ap, err := netip.ParseAddrPort(b)
		if !ok || err != nil || !ap.Addr().Is4() {
			fmt.Fprintf(os.Stderr, "%s: want LISTEN=IPv4:PORT, got %s\n", name, a)
			os.Exit(2)
		}
		maps = append(maps, Mapping{Listen: l, Backend: ap})
	}
	return maps
}

// ListenReusePort listens on addr with SO_REUSEPORT (a socket per loop) and TCP_NODELAY,
// which accepted sockets inherit; flags are more socket type flags (unix.SOCK_NONBLOCK).
func ListenReusePort(addr string, flags int) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return -1, err
	}
	return fd, unix.Listen(fd, 4096)
}
