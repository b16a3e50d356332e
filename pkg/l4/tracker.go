package l4

import (
	"context"
	"net"
	"sync"
	"time"
)

// Tracker keeps the open client connections so a shutdown can wait for them and then
// force-close the rest (traefik's connectionTracker).
type Tracker struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	empty chan struct{} // closed when conns becomes empty; nil when no one waits
}

// Add registers a connection.
func (t *Tracker) Add(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = make(map[net.Conn]struct{})
	}
	t.conns[c] = struct{}{}
}

// Remove unregisters a connection.
func (t *Tracker) Remove(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
}

// Len is the number of open connections.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// Shutdown waits until every connection is gone or ctx is done; then it closes those left and
// returns how many it closed.
func (t *Tracker) Shutdown(ctx context.Context) int {
	t.mu.Lock()
	if len(t.conns) == 0 {
		t.mu.Unlock()
		return 0
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	empty := t.empty
	t.mu.Unlock()
	select {
	case <-empty:
		return 0
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for c := range t.conns {
		c.SetDeadline(time.Unix(1, 0))
		c.Close()
		n++
	}
	return n
}
