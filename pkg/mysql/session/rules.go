package session

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// rulesFor is what the query rules say of a statement's text (the zero decision without rules).
func (s *Session) rulesFor(text string) rules.Decision {
	if s.cfg.Rules == nil {
		return rules.Decision{Text: text}
	}
	set := s.cfg.Rules()
	if set.Len() == 0 {
		return rules.Decision{Text: text}
	}
	var client net.IP
	if host := front.HostOf(s.cl.Conn); host != "" {
		client = net.ParseIP(host)
	}
	return set.Eval(rules.Query{Text: text, User: s.cl.User.Name, Schema: s.st.schema, Client: client, Listener: s.write,
		Digest: func() uint64 { _, id := sqlclass.Digest(text, s.mode()); return id }})
}

// reject answers a statement a rule refused.
func (s *Session) reject(d rules.Decision, seq byte) error {
	return s.reply(seq+1, wire.AppendErr(nil, uint16(d.Reject.Code), d.Reject.State, d.Reject.Message))
}

// ruleRoute is r as a rule's destination changes it.
func ruleRoute(r route, d rules.Decision) route {
	switch d.Destination {
	case "primary":
		return routePrimary
	case "replica":
		return routeRead // a replica session is read-only: a write sent there is refused and rerun on the primary
	}
	return r
}

// ruleTarget is, for a rule that names an upstream, a connection to one of its servers with the
// session's state, for one statement (nil outside that case, or in a transaction or a pin,
// where the statement stays where the session is); done gives it back after the statement.
func (s *Session) ruleTarget(d rules.Decision, class sqlclass.Class) (target func() (*backend.Conn, error), done func()) {
	if d.Upstream == "" || s.tx != nil || s.pinned || d.Upstream == s.write {
		return nil, func() {}
	}
	var c *backend.Conn
	target = func() (*backend.Conn, error) {
		if c != nil {
			s.drop(c, true) // a retry: the last one failed
		}
		var err error
		if c, err = s.acquire(d.Upstream, class.Read); err != nil {
			c = nil
			return nil, err
		}
		if err := s.sync(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	return target, func() {
		if c != nil && s.last == c {
			s.last = nil
		}
		if c != nil {
			s.drop(c, false)
		}
	}
}

// ruleTimeout stops the statement on its server after a rule's timeout (KILL QUERY over
// another connection); stop ends the watch.
func (s *Session) ruleTimeout(d rules.Decision) (stop func()) {
	if d.Timeout <= 0 {
		return func() {}
	}
	t := time.AfterFunc(d.Timeout, s.killRunning)
	return func() { t.Stop() }
}

// mirror sends the statement to a rule's mirror upstream, without waiting.
func (s *Session) mirror(d rules.Decision, text string) {
	if d.Mirror == nil || s.cfg.Mirrors == nil {
		return
	}
	key, login := s.key0(true)
	login.ReadOnly = false
	s.cfg.Mirrors.send(d.Mirror.Upstream, s.key, key, login, text)
}

// Mirrors runs mirrored statements: at most Max at once (one more is dropped and counted, so a
// slow mirror never holds clients up), each on a pooled connection to a server of its
// upstream, its results read and discarded.
type Mirrors struct {
	Registry *checkups.Registry
	Pool     *backend.Pool
	Max      int // default 16
	Sent     atomic.Int64
	Dropped  atomic.Int64
	Failed   atomic.Int64

	running atomic.Int64
}

func (m *Mirrors) send(upstream, hashKey string, key backend.Key, login backend.Login, text string) {
	max := int64(m.Max)
	if max <= 0 {
		max = 16
	}
	if m.running.Add(1) > max {
		m.running.Add(-1)
		m.Dropped.Add(1)
		return
	}
	m.Sent.Add(1)
	go func() {
		defer m.running.Add(-1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _, err := m.Registry.Try(ctx, upstream, hashKey, func(ctx context.Context, p checkups.Peer) error {
			k := key
			k.Addr = p.Addr()
			k.TLS, k.TLSPreferred = p.TLS()
			c, err := m.Pool.Get(ctx, k, login, p.Server.MaxConns)
			if err != nil {
				return err
			}
			_, qerr := c.Rows(ctx, text, 0)
			var ep *wire.ErrPacket
			if qerr == nil || errors.As(qerr, &ep) || strings.HasSuffix(qerr.Error(), "returned no result set") {
				c.Dirty = true // its session may have changed: reset before another takes it
				m.Pool.Put(c)
				return nil
			}
			m.Pool.Discard(c)
			return qerr
		})
		if err != nil {
			m.Failed.Add(1)
		}
	}()
}

// errRejected is how a statement a rule refused counts in the digests (an error).
var errRejected = errors.New("rejected by a rule")
