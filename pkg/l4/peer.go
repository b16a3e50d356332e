package l4

import (
	"errors"
	"syscall"
)

// PeerClosed peeks at c without blocking: a read of 0 bytes means the peer sent FIN; a reset
// peer reports an error. Pending data or nothing to read (EAGAIN) mean it is still there.
func PeerClosed(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = (n == 0 && err == nil) || (err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR))
		return true // never wait in the poller
	})
	return closed
}
