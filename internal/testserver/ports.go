package testserver

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// FreePort returns a loopback TCP port for a server the caller is about to start, reserved for
// this process until it exits. A port from the kernel's ephemeral range (what ":0" gives)
// can be taken between this call and the server's listen: by any outgoing connection (tests
// open thousands) or by a test process beside this one. So the port comes from below the
// ephemeral range, which the kernel never hands out by itself, and is reserved across
// processes by an exclusive lock on a file named after it, held until this process ends; it is
// also free at the moment of the call (a listen on it succeeded).
func FreePort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	lo, hi := reservedRange()
	dir := filepath.Join(os.TempDir(), "slardar-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, err
	}
	start := lo + rand.IntN(hi-lo)
	for i := range hi - lo {
		port := lo + (start-lo+i)%(hi-lo)
		if ports.held[port] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return 0, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // another process holds it
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			f.Close() // something outside the tests listens there
			continue
		}
		ln.Close()
		if ports.held == nil {
			ports.held = make(map[int]bool)
		}
		ports.held[port] = true
		ports.files = append(ports.files, f) // the lock lasts as long as the file is open
		return port, nil
	}
	return 0, errors.New("no free loopback port below the ephemeral range")
}

var ports struct {
	mu    sync.Mutex
	held  map[int]bool
	files []*os.File
}

// reservedRange is where FreePort looks: the ports below the kernel's ephemeral range (from
// 10000), or above it when it starts too low to leave room.
func reservedRange() (lo, hi int) {
	elo, ehi := 32768, 60999 // the kernel's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				elo, ehi = a, z
			}
		}
	}
	if elo-10000 >= 2000 {
		return 10000, elo
	}
	if 65535-ehi >= 2000 {
		return ehi + 1, 65536
	}
	panic(fmt.Sprintf("the ephemeral port range %d-%d leaves no room for test ports", elo, ehi))
}
