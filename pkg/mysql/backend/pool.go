package backend

import (
	"context"
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
	DefaultMaxIdle     = 64
	DefaultIdleTimeout = 5 * time.Minute
	resetTimeout       = 5 * time.Second
)

// Pool keeps backend connections between client sessions, per Key. A connection comes back
// only after COM_RESET_CONNECTION succeeded (and the proxy's session tracking and, on a
// replica, the read-only mode were set again), so a client never sees another client's
// variables, transaction, temporary tables or locks; one that cannot be reset, or whose state
// a reset may not restore (Dirty), is closed.
type Pool struct {
	MaxIdle     int           // idle connections per key; default DefaultMaxIdle
	IdleTimeout time.Duration // an idle connection older than this is closed; default DefaultIdleTimeout

	mu   sync.Mutex
	idle map[Key][]*Conn

	Opened, Reused, Resets, Closed atomic.Int64
}

func (p *Pool) maxIdle() int {
	if p.MaxIdle > 0 {
		return p.MaxIdle
	}
	return DefaultMaxIdle
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultIdleTimeout
}

// Get returns a connection of key: an idle one that is still open, or a new one logged in with
// schema as its default schema.
func (p *Pool) Get(ctx context.Context, key Key, schema string) (*Conn, error) {
	if c := p.take(key); c != nil {
		p.Reused.Add(1)
		return c, nil
	}
	c, err := Dial(ctx, key, schema)
	if err != nil {
		return nil, err
	}
	p.Opened.Add(1)
	return c, nil
}

// take pops the newest idle connection of key that has not timed out or been closed by the
// server.
func (p *Pool) take(key Key) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()

	for list := p.idle[key]; len(list) > 0; list = p.idle[key] {
		c := list[len(list)-1]
		p.idle[key] = list[:len(list)-1]
		sc, ok := c.watch.Conn.(syscall.Conn)
		if time.Since(c.idleAt) < p.idleTimeout() && ok && !l4.PeerClosed(sc) {
			return c
		}
		go p.close(c)
	}
	return nil
}

// Put resets c and keeps it for the next session of its key, or closes it.
func (p *Pool) Put(c *Conn) {
	if c == nil {
		return
	}
	if c.Dirty {
		p.close(c)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
	defer cancel()
	if err := c.Exec(ctx, mysql.COM_RESET_CONNECTION, ""); err != nil {
		p.close(c)
		return
	}
	if err := c.track(ctx); err != nil {
		p.close(c)
		return
	}
	p.Resets.Add(1)
	c.Status, c.SkipState = wire.StatusAutocommit, false
	c.idleAt = time.Now()
	p.mu.Lock()
	if p.idle == nil {
		p.idle = make(map[Key][]*Conn)
	}
	if len(p.idle[c.Key]) >= p.maxIdle() {
		p.mu.Unlock()
		p.close(c)
		return
	}
	p.idle[c.Key] = append(p.idle[c.Key], c)
	p.mu.Unlock()
}

// Discard closes a connection that must not be reused (it failed).
func (p *Pool) Discard(c *Conn) {
	if c != nil {
		p.close(c)
	}
}

func (p *Pool) close(c *Conn) {
	c.Close()
	p.Closed.Add(1)
}

// Idle counts the idle connections.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.idle {
		n += len(l)
	}
	return n
}

// Close closes every idle connection.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, l := range idle {
		for _, c := range l {
			p.close(c)
		}
	}
}
