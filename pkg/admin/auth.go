package admin

import (
	"context"
	"net"
	"sync"
	"time"
)

// authenticatedKey marks the context of a command sent on a connection that gave the
// configured token.
type authenticatedKey struct{}

// remoteKey carries the client's address in a command's context.
type remoteKey struct{}

// Authenticated reports whether the command of ctx came on a connection that authenticated
// with the server's token. Without a token nobody is authenticated, so handlers that show
// secrets (heartbeat passwords) mask them.
func Authenticated(ctx context.Context) bool {
	ok, _ := ctx.Value(authenticatedKey{}).(bool)
	return ok
}

// Peer is the client address of the command of ctx ("" outside a server).
func Peer(ctx context.Context) string {
	if a, ok := ctx.Value(remoteKey{}).(net.Addr); ok {
		return a.String()
	}
	return ""
}

func remoteHost(ctx context.Context) string {
	host, _, err := net.SplitHostPort(Peer(ctx))
	if err != nil {
		return Peer(ctx)
	}
	return host
}

// Bounds of the AUTH throttle.
const (
	authStep    = 100 * time.Millisecond
	authMaxStep = 5 * time.Second
	authForget  = 10 * time.Minute
)

// authLimiter slows down guessing the token: after a failed AUTH from an address, every AUTH
// from it (on any connection, right or wrong) is answered in turn, each failure adding a delay
// that doubles from 100 ms up to 5 s. A success, or 10 minutes without a failure, forgets the
// address.
type authLimiter struct {
	mu    sync.Mutex
	hosts map[string]*authState
}

type authState struct {
	fails int
	next  time.Time // answers before this wait for it
	last  time.Time // last failure
}

// wait holds an AUTH from host until its turn and records its outcome; false means ctx ended
// first (the server is stopping).
func (l *authLimiter) wait(ctx context.Context, host string, ok bool) bool {
	now := time.Now()
	l.mu.Lock()
	if l.hosts == nil {
		l.hosts = make(map[string]*authState)
	}
	for h, st := range l.hosts {
		if now.Sub(st.last) > authForget {
			delete(l.hosts, h)
		}
	}
	st := l.hosts[host]
	var at time.Time
	if st != nil {
		at = st.next
	}
	if !ok {
		if st == nil {
			st = &authState{}
			l.hosts[host] = st
		}
		st.fails++
		st.last = now
		at = later(at, now).Add(min(authStep<<min(st.fails-1, 10), authMaxStep))
		st.next = at
	} else if st != nil {
		delete(l.hosts, host)
	}
	l.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
