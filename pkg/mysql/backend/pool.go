package backend

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Defaults of a Pool.
const (
	DefaultIdleTimeout = 5 * time.Minute
	DefaultMaxAge      = time.Hour
	DefaultWaitTimeout = 10 * time.Second
	DefaultMaxWaiting  = 4096
	minIdle            = 4
	resetTimeout       = 5 * time.Second
)

// ErrLimit is a session that waited WaitTimeout for a connection to a server whose connection
// limit was reached (see LimitError).
var ErrLimit = errors.New("too many connections")

// LimitError says which limit a session waited on, and how long.
type LimitError struct {
	Addr   string
	Limit  int
	Waited time.Duration
	Queue  bool // the queue of waiting sessions was full: it did not wait
}

func (e *LimitError) Error() string {
	if e.Queue {
		return fmt.Sprintf("too many connections: the queue of sessions waiting for a connection to %s is full (limit %d connections)", e.Addr, e.Limit)
	}
	return fmt.Sprintf("too many connections: all %d connections mysql-proxy may open to %s are in use (waited %v; max_conns)", e.Limit, e.Addr, e.Waited)
}

func (e *LimitError) Unwrap() error { return ErrLimit }

// Pool keeps backend connections between client sessions and keeps the proxy within each
// server's connection limit. A connection taken from the pool is logged in again as the session
// that takes it (COM_CHANGE_USER): it is what a fresh login would be — the user, its default
// role, the schema and its character set as they are now, session variables from the globals
// as they are now, the session's attributes — so a client never sees another client's
// variables, transaction, temporary tables, locks or role. A connection that holds a
// transaction, locks or temporary tables (Dirty) is reset (COM_RESET_CONNECTION) before it waits
// in the pool, closed when that fails; one whose session set a role (Tainted: neither command
// undoes it on MariaDB 10.11) is closed.
//
// Per server: at most its limit of connections are open (the configured one, else the
// server's @@max_connections less a tenth for its other clients); at the limit, an idle
// connection of another key is closed to make room, else the session waits (at most
// WaitTimeout, MaxWaiting sessions per server) for one to be released, then gets ErrLimit. Idle
// connections are at most MaxIdle per server (none when negative); one idle longer than IdleTimeout, or opened more
// than MaxAge ago, is closed.
type Pool struct {
	MaxIdle     int           // idle connections per server; default a tenth of its limit, at least 4; negative: none
	IdleTimeout time.Duration // default DefaultIdleTimeout
	MaxAge      time.Duration // default DefaultMaxAge
	WaitTimeout time.Duration // default DefaultWaitTimeout
	MaxWaiting  int           // default DefaultMaxWaiting
	// MaxConns is the proxy's connection limit per server when its upstream sets none; 0: the
	// server's @@max_connections less a tenth (at least 2 kept for its other clients).
	MaxConns int

	mu      sync.Mutex
	servers map[string]*server
	janitor sync.Once
	done    chan struct{}

	Opened, Reused, Resets, Closed atomic.Int64
	Shared                         atomic.Int64 // reuses by a multiplexed session of the same state, without COM_CHANGE_USER
}

// server is the pool's book of one server.
type server struct {
	open       int        // connections open: in use, idle or being dialed
	configured int        // the limit the server's upstream sets (0: none), as last seen
	idle       []*Conn    // oldest first
	learned    int        // the server's @@max_connections (0: not known yet)
	waiters    *list.List // of chan struct{}, first come first served
	// woken counts waiters woken (wake) that have not yet come back for their connection:
	// until they have, a newcomer queues behind them rather than take it first.
	woken    int
	waited   time.Duration
	waits    int64
	hello    *Handshake // the server's handshake, at its last login or probe
	probedAt time.Time  // the last probe that failed
}

func (p *Pool) maxWaiting() int {
	if p.MaxWaiting > 0 {
		return p.MaxWaiting
	}
	return DefaultMaxWaiting
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (p *Pool) maxAge() time.Duration {
	if p.MaxAge > 0 {
		return p.MaxAge
	}
	return DefaultMaxAge
}

func (p *Pool) waitTimeout() time.Duration {
	if p.WaitTimeout > 0 {
		return p.WaitTimeout
	}
	return DefaultWaitTimeout
}

// limit is a server's connection limit (0: none known yet).
func (p *Pool) limit(sv *server) int {
	switch {
	case sv.configured > 0:
		return sv.configured
	case p.MaxConns > 0:
		return p.MaxConns
	case sv.learned > 0:
		return max(1, sv.learned-max(2, sv.learned/10))
	}
	return 0
}

// available is how many connections sv can give without a wait: idle ones and room under its
// limit; p.mu is held.
func (p *Pool) available(sv *server) int {
	limit := p.limit(sv)
	if limit == 0 {
		return math.MaxInt
	}
	return len(sv.idle) + max(0, limit-sv.open)
}

func (p *Pool) maxIdle(sv *server) int {
	if p.MaxIdle > 0 {
		return p.MaxIdle
	}
	return max(minIdle, p.limit(sv)/10)
}

// server returns the book of addr; p.mu is held.
func (p *Pool) server(addr string) *server {
	if p.servers == nil {
		p.servers = make(map[string]*server)
	}
	sv := p.servers[addr]
	if sv == nil {
		sv = &server{waiters: list.New()}
		p.servers[addr] = sv
	}
	return sv
}

// Get returns a connection of key logged in as l: an idle one, logged in again, or a new one.
// maxConns is the server's limit from its upstream (0: the pool's). At the limit it waits, at
// most WaitTimeout, for a connection to be released.
func (p *Pool) Get(ctx context.Context, key Key, l Login, maxConns int) (*Conn, error) {
	p.janitor.Do(p.startJanitor)
	var start time.Time
	// turn: the session was woken in the server's queue. Sessions take connections in the
	// order they asked: one that finds others queued or woken before it waits behind them
	// (without that, newcomers took each released connection before the woken waiter came
	// back for it, and a waiter queued again at the end could wait past every timeout while
	// thousands of multiplexed clients went first).
	turn := false
	for {
		p.mu.Lock()
		sv := p.server(key.Addr)
		sv.configured = maxConns
		front := turn // if it must wait again, it waits first in line
		if turn {
			sv.woken--
			turn = false
		} else if sv.waiters.Len() > 0 || sv.woken > 0 && sv.woken >= p.available(sv) {
			limit := p.limit(sv)
			p.mu.Unlock()
			var err error
			if turn, err = p.waitRetry(ctx, key.Addr, limit, &start, 0, false); err != nil {
				return nil, err
			}
			continue
		}
		if c := p.takeShared(sv, key, l.Shared); c != nil {
			p.mu.Unlock()
			p.Reused.Add(1)
			p.Shared.Add(1)
			p.account(sv, start)
			return c, nil
		}
		if c := p.takeIdle(sv, key); c != nil {
			p.mu.Unlock()
			lctx, cancel := l.dialContext(ctx)
			err := c.ChangeUser(lctx, l)
			cancel()
			if err != nil {
				p.close(c) // the next try dials, or takes another
				if ctx.Err() != nil {
					return nil, err
				}
				continue
			}
			p.Reused.Add(1)
			p.account(sv, start)
			return c, nil
		}
		limit := p.limit(sv)
		var victim *Conn
		if limit > 0 && sv.open >= limit && len(sv.idle) > 0 {
			victim, sv.idle = sv.idle[0], sv.idle[1:] // another key's: room for this one
		}
		if limit == 0 || sv.open < limit || victim != nil {
			if victim == nil {
				sv.open++
			}
			p.mu.Unlock()
			if victim != nil {
				victim.Close()
				p.Closed.Add(1)
			}
			lctx, cancel := l.dialContext(ctx)
			c, err := Dial(lctx, key, l)
			cancel()
			p.mu.Lock()
			if err != nil {
				sv.open--
				full := isTooMany(err) && sv.open > 0
				if !full {
					p.wake(sv) // the slot is free for another; a full server has none to give
				}
				p.mu.Unlock()
				if full && ctx.Err() == nil {
					// The server is full with other clients' connections: wait for one of
					// ours to be released (or a little while), as at the limit.
					var err error
					if turn, err = p.waitRetry(ctx, key.Addr, limit, &start, serverFullRetry, false); err != nil {
						return nil, err
					}
					continue
				}
				return nil, err
			}
			if c.maxConnections > 0 {
				sv.learned = c.maxConnections
			}
			sv.hello = c.hs
			p.mu.Unlock()
			p.Opened.Add(1)
			p.account(sv, start)
			return c, nil
		}
		p.mu.Unlock()
		var err error
		// A session whose turn came but found nothing (the connection it was woken for was
		// closed) waits first in line again.
		if turn, err = p.waitRetry(ctx, key.Addr, limit, &start, 0, front); err != nil {
			return nil, err
		}
	}
}

// dialContext is ctx bounded by the login's DialTimeout.
func (l Login) dialContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.DialTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.DialTimeout)
}

// MaxWait is how long Get waits for a connection at a server's limit (WaitTimeout).
func (p *Pool) MaxWait() time.Duration { return p.waitTimeout() }

// account adds a wait that ended with a connection to the server's totals.
func (p *Pool) account(sv *server, start time.Time) {
	if start.IsZero() {
		return
	}
	p.mu.Lock()
	sv.waited += time.Since(start)
	sv.waits++
	p.mu.Unlock()
}

// serverFullRetry is how long a session waits before it logs in again to a server that refused
// it for its connection limit, when none of the proxy's connections is released meanwhile.
const serverFullRetry = 100 * time.Millisecond

// waitRetry waits in the server's queue (at its end, or first when front) until a connection
// is released (woken: the caller's turn), the wait that started at *start (now, if it is
// zero) has lasted WaitTimeout (ErrLimit), ctx ends, or retry (0: never) has passed (not
// woken: try again).
func (p *Pool) waitRetry(ctx context.Context, addr string, limit int, startp *time.Time, retry time.Duration, front bool) (woken bool, err error) {
	if startp.IsZero() {
		*startp = time.Now()
	}
	start := *startp
	p.mu.Lock()
	sv := p.server(addr)
	if sv.waiters.Len() >= p.maxWaiting() {
		p.mu.Unlock()
		return false, &LimitError{Addr: addr, Limit: limit, Queue: true}
	}
	ch := make(chan struct{})
	var e *list.Element
	if front {
		e = sv.waiters.PushFront(ch)
	} else {
		e = sv.waiters.PushBack(ch)
	}
	p.mu.Unlock()
	left := p.waitTimeout() - time.Since(start)
	t := time.NewTimer(max(left, 0))
	defer t.Stop()
	var again <-chan time.Time
	if retry > 0 && retry < left {
		r := time.NewTimer(retry)
		defer r.Stop()
		again = r.C
	}
	select {
	case <-ch:
		return true, nil
	case <-again:
		p.mu.Lock()
		select {
		case <-ch: // woken as it gave up: its turn
			p.mu.Unlock()
			return true, nil
		default:
			sv.waiters.Remove(e)
		}
		p.mu.Unlock()
		return false, nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	select {
	case <-ch: // woken as it gave up: pass the turn on
		sv.woken--
		p.wake(sv)
	default:
		sv.waiters.Remove(e)
	}
	sv.waited += time.Since(start)
	sv.waits++
	p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return false, &LimitError{Addr: addr, Limit: limit, Waited: p.waitTimeout()}
}

// wake lets the first waiter of sv try again; p.mu is held.
func (p *Pool) wake(sv *server) {
	if e := sv.waiters.Front(); e != nil {
		sv.waiters.Remove(e)
		sv.woken++
		close(e.Value.(chan struct{}))
	}
}

// takeIdle pops the newest idle connection of key that is still usable; p.mu is held.
func (p *Pool) takeIdle(sv *server, key Key) *Conn {
	now := time.Now()
	for i := len(sv.idle) - 1; i >= 0; i-- {
		c := sv.idle[i]
		if c.Key != key {
			continue
		}
		sv.idle = append(sv.idle[:i], sv.idle[i+1:]...)
		sc, ok := c.watch.Conn.(syscall.Conn)
		if now.Sub(c.idleAt) < p.idleTimeout() && now.Sub(c.openedAt) < p.maxAge() && (!ok || !l4.PeerClosed(sc)) {
			return c
		}
		sv.open--
		go p.closeConn(c)
	}
	return nil
}

// takeShared is an idle connection a multiplexed session of state key shared gave back (see
// Login.Shared), or nil.
func (p *Pool) takeShared(sv *server, key Key, shared string) *Conn {
	if shared == "" {
		return nil
	}
	now := time.Now()
	for i := len(sv.idle) - 1; i >= 0; i-- {
		c := sv.idle[i]
		if c.Key != key || c.Shared != shared || now.Sub(c.idleAt) >= p.idleTimeout() || now.Sub(c.openedAt) >= p.maxAge() {
			continue
		}
		sv.idle = append(sv.idle[:i], sv.idle[i+1:]...)
		return c
	}
	return nil
}

// isTooMany reports a server's refusal of a login for its connection limit.
func isTooMany(err error) bool {
	var me *mysql.MyError
	return errors.As(err, &me) && (me.Code == mysql.ER_CON_COUNT_ERROR || me.Code == mysql.ER_TOO_MANY_USER_CONNECTIONS)
}

// Put takes back a connection at the end of a session: reset first when it is Dirty or in a
// transaction, then idle for the next session (the oldest idle one is closed beyond MaxIdle),
// or closed.
func (p *Pool) Put(c *Conn) {
	if c == nil {
		return
	}
	if c.Tainted || c.Killed || p.MaxIdle < 0 {
		p.Discard(c)
		return
	}
	if c.Dirty || c.InTransaction() {
		ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
		err := c.Reset(ctx)
		cancel()
		if err != nil {
			p.Discard(c)
			return
		}
		p.Resets.Add(1)
	}
	c.Status, c.SkipState = wire.StatusAutocommit, false
	c.idleAt = time.Now()
	p.mu.Lock()
	sv := p.server(c.Key.Addr)
	sv.idle = append(sv.idle, c)
	var extra *Conn
	// A multiplexed session's connection waits for the next statement whatever max_idle says:
	// the sessions' connections are all idle between statements (the limit still bounds them).
	if len(sv.idle) > p.maxIdle(sv) && c.Shared == "" {
		extra, sv.idle = sv.idle[0], sv.idle[1:]
		sv.open--
	}
	p.wake(sv)
	p.mu.Unlock()
	if extra != nil {
		p.closeConn(extra)
	}
}

// Discard closes a connection that must not be reused (it failed).
func (p *Pool) Discard(c *Conn) {
	if c == nil {
		return
	}
	p.mu.Lock()
	sv := p.server(c.Key.Addr)
	sv.open--
	p.wake(sv)
	p.mu.Unlock()
	p.closeConn(c)
}

func (p *Pool) close(c *Conn) { p.Discard(c) }

func (p *Pool) closeConn(c *Conn) {
	c.Close()
	p.Closed.Add(1)
}

// startJanitor closes, every little while, idle connections past IdleTimeout or MaxAge.
func (p *Pool) startJanitor() {
	p.mu.Lock()
	done := make(chan struct{})
	p.done = done
	p.mu.Unlock()
	every := min(p.idleTimeout()/4, 30*time.Second)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.trim(time.Now())
			}
		}
	}()
}

// trim closes idle connections past IdleTimeout or MaxAge.
func (p *Pool) trim(now time.Time) {
	var old []*Conn
	p.mu.Lock()
	for _, sv := range p.servers {
		keep := sv.idle[:0]
		for _, c := range sv.idle {
			if now.Sub(c.idleAt) >= p.idleTimeout() || now.Sub(c.openedAt) >= p.maxAge() {
				old = append(old, c)
				sv.open--
				continue
			}
			keep = append(keep, c)
		}
		sv.idle = keep
		if len(old) > 0 {
			p.wake(sv)
		}
	}
	p.mu.Unlock()
	for _, c := range old {
		p.closeConn(c)
	}
}

// ServerStats are one server's connections as the pool sees them.
type ServerStats struct {
	Open, Idle, Waiting, Limit int
	Waits                      int64
	Waited                     time.Duration
}

// Stats are every server's, by address.
func (p *Pool) Stats() map[string]ServerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]ServerStats, len(p.servers))
	for addr, sv := range p.servers {
		out[addr] = ServerStats{Open: sv.open, Idle: len(sv.idle), Waiting: sv.waiters.Len(), Limit: p.limit(sv),
			Waits: sv.waits, Waited: sv.waited}
	}
	return out
}

// Idle counts the idle connections.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sv := range p.servers {
		n += len(sv.idle)
	}
	return n
}

// Close closes every idle connection and stops the janitor.
func (p *Pool) Close() {
	p.mu.Lock()
	var idle []*Conn
	for _, sv := range p.servers {
		idle = append(idle, sv.idle...)
		sv.open -= len(sv.idle)
		sv.idle = nil
	}
	if p.done != nil {
		close(p.done)
		p.done = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		p.closeConn(c)
	}
}

// Kill stops c's running statement (or, with connection, ends its session) on its server,
// from a connection of its own logged in as c's user (the owner of the thread may kill it).
func (p *Pool) Kill(ctx context.Context, c *Conn, connection bool) error {
	k, err := Dial(ctx, c.Key, Login{User: c.Login.User, Secret: c.Login.Secret, Collation: c.Login.Collation})
	if err != nil {
		return err
	}
	defer k.Close()
	what := "QUERY "
	if connection {
		what = "CONNECTION "
	}
	return k.Exec(ctx, mysql.COM_QUERY, fmt.Sprintf("KILL %s%d", what, c.ThreadID))
}

// Hello is the server's handshake (its version, default collation and capabilities) as the
// last login to it or probe saw it; with probe set and none seen yet, it reads one now.
func (p *Pool) Hello(ctx context.Context, addr string, probe bool) *Handshake {
	p.mu.Lock()
	sv := p.server(addr)
	hs, failed := sv.hello, sv.probedAt
	p.mu.Unlock()
	if hs != nil || !probe || time.Since(failed) < 10*time.Second {
		return hs
	}
	hs, err := ReadHandshake(ctx, addr)
	if err != nil {
		p.mu.Lock()
		sv.probedAt = time.Now()
		p.mu.Unlock()
		return nil
	}
	p.mu.Lock()
	p.server(addr).hello = hs
	p.mu.Unlock()
	return hs
}

// Anchor takes a connection of key for a client that has not logged in yet, without waiting:
// an idle one as it is (it is logged in again before use); else, while the server's
// connections are under half its limit, a new connection that has the server's handshake
// (its thread id) and waits for the client's login to be completed (Pending); nil, nil when
// neither is had at once, or sessions wait for the server (an anchor would take their turn).
// shared: the client's session is multiplexed, so its anchor is a slot it holds only until its
// first command; then only while the connections in use are under half the limit does it get
// one, so that clients that log in and idle never hold more than half the slots.
func (p *Pool) Anchor(ctx context.Context, key Key, maxConns int, shared bool) (*Conn, *Pending) {
	p.janitor.Do(p.startJanitor)
	p.mu.Lock()
	sv := p.server(key.Addr)
	sv.configured = maxConns
	if limit := p.limit(sv); sv.waiters.Len() > 0 || sv.woken > 0 || shared && limit > 0 && sv.open-len(sv.idle) >= limit/2 {
		p.mu.Unlock()
		return nil, nil
	}
	if c := p.takeIdle(sv, key); c != nil {
		p.mu.Unlock()
		p.Reused.Add(1)
		return c, nil
	}
	if limit := p.limit(sv); limit > 0 && sv.open >= limit/2 {
		p.mu.Unlock()
		return nil, nil // clients that have not logged in yet may not hold more than half the slots
	}
	sv.open++
	p.mu.Unlock()
	g, err := dialGreet(ctx, key.Addr)
	if err != nil {
		p.mu.Lock()
		sv.open--
		p.wake(sv)
		p.mu.Unlock()
		return nil, nil
	}
	return nil, &Pending{pool: p, addr: key.Addr, g: g}
}

// Pending is a connection to a server that has the server's handshake, and so its thread id,
// and waits for the client it is for to log in.
type Pending struct {
	pool *Pool
	addr string
	g    *greeting
}

// ThreadID is the server's thread id of the connection.
func (pd *Pending) ThreadID() uint32 { return pd.g.hs.ThreadID }

// Login completes the login as l with key's capabilities (the client's).
func (pd *Pending) Login(ctx context.Context, key Key, l Login) (*Conn, error) {
	return pd.complete(ctx, key, l, nil)
}

func (pd *Pending) complete(ctx context.Context, key Key, l Login, ra *relayedAuth) (*Conn, error) {
	c, err := pd.g.finishWith(ctx, key, l, ra)
	p := pd.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	sv := p.server(pd.addr)
	if err != nil {
		sv.open--
		p.wake(sv)
		return nil, err
	}
	if c.maxConnections > 0 {
		sv.learned = c.maxConnections
	}
	sv.hello = c.hs
	p.Opened.Add(1)
	return c, nil
}

// Greet opens a connection to the server of key that has its handshake and waits for a login
// (Pending), under the server's limit; nil when at it.
func (p *Pool) Greet(ctx context.Context, key Key, maxConns int) (*Pending, error) {
	p.mu.Lock()
	sv := p.server(key.Addr)
	sv.configured = maxConns
	if limit := p.limit(sv); limit > 0 && sv.open >= limit {
		p.mu.Unlock()
		return nil, &LimitError{Addr: key.Addr, Limit: limit, Queue: true}
	}
	sv.open++
	p.mu.Unlock()
	g, err := dialGreet(ctx, key.Addr)
	if err != nil {
		p.mu.Lock()
		sv.open--
		p.wake(sv)
		p.mu.Unlock()
		return nil, err
	}
	return &Pending{pool: p, addr: key.Addr, g: g}, nil
}

// Abandon closes a connection no client logged in on.
func (pd *Pending) Abandon() {
	pd.g.nc.Close()
	p := pd.pool
	p.mu.Lock()
	sv := p.server(pd.addr)
	sv.open--
	p.wake(sv)
	p.mu.Unlock()
}
