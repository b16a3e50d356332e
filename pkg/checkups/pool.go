package checkups

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Errors of a selection, with the original's strings.
var (
	ErrNoServers  = errors.New("no servers available")
	ErrTryTimeout = errors.New("try_timeout excceed") // sic: the original's spelling
)

// Busy marks an attempt's error as the caller's own limit (a connection pool full of its
// own connections), not a failure of the server: the next server is tried, and passive
// health and the per-server error counts are not told.
func Busy(err error) error { return &busyError{err} }

type busyError struct{ err error }

func (e *busyError) Error() string { return e.err.Error() }
func (e *busyError) Unwrap() error { return e.err }

// UnknownUpstreamError is returned for a name no upstream has.
type UnknownUpstreamError struct{ Name string }

func (e *UnknownUpstreamError) Error() string { return "unknown skey " + e.Name }

// pool is the runtime form of one upstream: its config, balancer state and the health state of
// its servers. A new config makes a new pool; peerStates are carried over by address.
type pool struct {
	name   string
	up     *Upstream
	levels []*levelState
	all    []*peer

	heartbeatDefault bool
	observe          func(upstream, server string, err error) // Registry.OnDial
}

type levelState struct {
	servers []*peer
	mu      sync.Mutex
	wrr     []wrrState
	ring    []ringPoint
	next    int // least_conn tie breaker
}

type peer struct {
	srv   Server
	level int
	index int
	state *peerState
}

func newPool(name string, up *Upstream, old map[string]*peerState, heartbeatDefault bool, now time.Time) *pool {
	p := &pool{name: name, up: up, heartbeatDefault: heartbeatDefault}
	for li, l := range up.Cluster.Levels {
		ls := &levelState{wrr: newWRR(l.Servers)}
		switch {
		case up.hashed() && up.HashRing == RingKetama:
			ls.ring = buildKetama(l.Servers)
		case up.hashed():
			ls.ring = buildRing(l.Servers)
		}
		for si, s := range l.Servers {
			st := old[s.Addr()]
			if st == nil {
				st = newPeerState(now)
			}
			pe := &peer{srv: s, level: li, index: si, state: st}
			ls.servers = append(ls.servers, pe)
			p.all = append(p.all, pe)
		}
		p.levels = append(p.levels, ls)
	}
	return p
}

// states maps address to health state, for the next pool of the same upstream.
func (p *pool) states() map[string]*peerState {
	m := make(map[string]*peerState, len(p.all))
	for _, pe := range p.all {
		m[pe.srv.Addr()] = pe.state
	}
	return m
}

func (p *pool) heartbeatEnabled() bool { return p.up.enabled(p.heartbeatDefault) }

// usable is checkups' peer_cb: an err heartbeat excludes a server (unstable does not), and so
// do a lagging replica, an err passive status and an operator's drain or maint.
func (p *pool) usable(pe *peer, now time.Time) bool {
	if pe.state.adminState() != StateReady {
		return false // drained or in maintenance by an operator
	}
	if hs := pe.state.heartbeat(); p.heartbeatEnabled() && (hs == StatusErr || hs == StatusLagging) {
		return false
	}
	return pe.state.passive(pe.srv, now) == StatusOK
}

// othersOK reports whether any server but pe is passively ok (the last server is never marked down).
func (p *pool) othersOK(pe *peer, now time.Time) bool {
	for _, o := range p.all {
		if o != pe && o.state.passive(o.srv, now) == StatusOK {
			return true
		}
	}
	return false
}

// Peer is a server chosen for one connection.
type Peer struct {
	Upstream string
	Server   Server
	pe       *peer
	pool     *pool
}

// Usable reports whether the server may still be chosen (its health now): a connection held
// past a change (a replica that started lagging) can be let go.
func (p Peer) Usable() bool { return p.pool == nil || p.pool.usable(p.pe, time.Now()) }

// Addr is the server's host:port.
func (p Peer) Addr() string { return p.Server.Addr() }

// TLS is the upstream's TLS to its servers (see Upstream.ClientTLS).
func (p Peer) TLS() (*tls.Config, bool) {
	if p.pool == nil {
		return nil, false
	}
	return p.pool.up.ClientTLS()
}

// Acquire counts a connection open to the peer (for least_conn and status) until release is called.
func (p Peer) Acquire() (release func()) {
	p.pe.state.active.Add(1)
	return func() { p.pe.state.active.Add(-1) }
}

// pick chooses a server of a level that is usable and not yet tried.
func (p *pool) pick(ls *levelState, key string, tried map[*peer]bool, now time.Time) *peer {
	ok := func(i int) bool {
		pe := ls.servers[i]
		return !tried[pe] && p.usable(pe, now)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var i int
	switch {
	case len(ls.servers) == 1:
		i = -1
		if ok(0) {
			i = 0
		}
	case p.up.hashed():
		i = ringLookup(ls.ring, p.keyHash(key), ok)
	case p.up.Mode == ModeLeastConn:
		i = leastConn(ls, ok)
	default:
		i = wrrPick(ls.wrr, ok)
	}
	if i < 0 {
		return nil
	}
	return ls.servers[i]
}

func (p *pool) keyHash(key string) uint32 {
	if p.up.HashRing == RingKetama {
		return ketamaKey(key)
	}
	return hashString(key)
}

func leastConn(ls *levelState, ok func(int) bool) int {
	best := -1
	var bestLoad float64
	n := len(ls.servers)
	for k := 0; k < n; k++ {
		i := (ls.next + k) % n
		if !ok(i) {
			continue
		}
		pe := ls.servers[i]
		load := float64(pe.state.active.Load()) / float64(max(pe.srv.Weight, 1))
		if best < 0 || load < bestLoad {
			best, bestLoad = i, load
		}
	}
	ls.next = (ls.next + 1) % n
	return best
}

// fail is checkups' set_status_cb for a failed try: passive accounting, and for round robin a
// halved effective weight.
func (p *pool) fail(pe *peer, now time.Time) bool {
	if !p.up.hashed() && p.up.Mode != ModeLeastConn {
		ls := p.levels[pe.level]
		ls.mu.Lock()
		wrrFail(&ls.wrr[pe.index])
		ls.mu.Unlock()
	}
	return pe.state.recordPassive(pe.srv, true, now, func() bool { return p.othersOK(pe, now) })
}

// TryFunc attempts to use a peer; a non-nil error makes the next peer be tried.
type TryFunc func(ctx context.Context, p Peer) error

// try is checkups' try_cluster: levels in order, servers by the balancer, each at most once,
// until fn succeeds, the try limit (default: every server) is reached or try_timeout has been
// spent. Failures are fed back to passive health. It returns the peer that succeeded, the number
// of attempts and, on failure, the last attempt's error joined with the reason it stopped.
func (p *pool) try(ctx context.Context, key string, now func() time.Time, onFail func(Peer, error, bool), fn TryFunc) (Peer, int, error) {
	limit := p.up.Try
	if limit <= 0 {
		limit = p.up.servers()
	}
	start := now()
	if p.up.TryTimeout > 0 {
		// try_timeout bounds the attempt in flight too: a dial to a black hole ends with it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, seconds(p.up.TryTimeout))
		defer cancel()
	}
	tried := make(map[*peer]bool)
	attempts := 0
	var lastErr error
	for _, ls := range p.levels {
		for {
			if err := ctx.Err(); err != nil {
				if p.up.TryTimeout > 0 && errors.Is(err, context.DeadlineExceeded) && lastErr != nil {
					return Peer{}, attempts, fmt.Errorf("%w: %w", ErrTryTimeout, lastErr)
				}
				return Peer{}, attempts, err
			}
			pe := p.pick(ls, key, tried, now())
			if pe == nil {
				break
			}
			tried[pe] = true
			attempts++
			peer := Peer{Upstream: p.name, Server: pe.srv, pe: pe, pool: p}
			err := fn(ctx, peer)
			var busy *busyError
			errors.As(err, &busy)
			if p.observe != nil && busy == nil {
				p.observe(p.name, pe.srv.Addr(), err)
			}
			if err == nil {
				return peer, attempts, nil
			}
			lastErr = err
			if busy == nil {
				down := p.fail(pe, now())
				if onFail != nil {
					onFail(peer, err, down)
				}
			}
			if attempts >= limit {
				return Peer{}, attempts, fmt.Errorf("%d of %d tries failed, last: %w", attempts, limit, lastErr)
			}
			if p.up.TryTimeout > 0 && now().Sub(start) > seconds(p.up.TryTimeout) {
				return Peer{}, attempts, fmt.Errorf("%w: %w", ErrTryTimeout, lastErr)
			}
		}
	}
	if lastErr != nil {
		return Peer{}, attempts, fmt.Errorf("%w: last: %w", ErrNoServers, lastErr)
	}
	return Peer{}, attempts, ErrNoServers
}

func itoa(n int) string { return strconv.Itoa(n) }

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
