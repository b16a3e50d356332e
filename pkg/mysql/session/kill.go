package session

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Sessions are a daemon's open sessions by the connection id their clients were told (the
// handshake's, CONNECTION_ID()): KILL with that id finds its session, never a server
// connection of another.
type Sessions struct {
	mu sync.Mutex
	m  map[sessionID]*Session
}

// sessionID is a session's announced id on its listener's primary upstream (two primaries may
// have threads of the same id).
type sessionID struct {
	upstream string
	id       uint32
}

func (r *Sessions) add(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[sessionID]*Session)
	}
	r.m[sessionID{s.write, s.cl.ConnID}] = s
}

func (r *Sessions) remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id := (sessionID{s.write, s.cl.ConnID}); r.m[id] == s {
		delete(r.m, id)
	}
}

func (r *Sessions) get(upstream string, id uint32) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[sessionID{upstream, id}]
}

// ofUser are the sessions of a user on the listener of upstream.
func (r *Sessions) ofUser(upstream, name string) []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Session
	for id, s := range r.m {
		if id.upstream == upstream && s.userName() == name {
			out = append(out, s)
		}
	}
	return out
}

// fromHost reports whether the session's client is of an account host pattern, as the server
// matches a thread's host in KILL USER name@host.
func (s *Session) fromHost(pattern string) bool {
	addr := front.HostOf(s.cl.Conn)
	hosts := []string{addr}
	if s.cfg.ClientHosts != nil {
		hosts = s.cfg.ClientHosts(addr)
	}
	return slices.ContainsFunc(hosts, func(h string) bool { return front.HostMatches(pattern, h, h != addr) })
}

func (s *Session) userName() string {
	s.userMu.Lock()
	defer s.userMu.Unlock()
	return s.cl.User.Name
}

// kill runs a KILL the client sent (a statement, or COM_PROCESS_KILL): on the session the id
// names, as the server would — its running statement stopped on its server (over another
// connection), or the session ended — when the client is its user or may kill others' (SUPER
// or CONNECTION ADMIN on the primary); an id of no session is the server's 1094.
func (s *Session) kill(k sqlclass.Kill, seq byte) error {
	var targets []*Session
	if k.User != "" {
		for _, t := range s.cfg.Sessions.ofUser(s.write, k.User) {
			if k.Host == "" || t.fromHost(k.Host) {
				targets = append(targets, t)
			}
		}
	} else {
		t := s.cfg.Sessions.get(s.write, uint32(k.ID))
		if t == nil || k.ID > 0xffffffff {
			return s.reply(seq+1, wire.NewError(mysql.ER_NO_SUCH_THREAD, k.ID))
		}
		targets = []*Session{t}
	}
	for _, t := range targets {
		if t.userName() != s.userName() && !s.mayKillOthers() {
			return s.reply(seq+1, wire.NewError(mysql.ER_KILL_DENIED_ERROR, t.cl.ConnID))
		}
	}
	for _, t := range targets {
		if t == s && !k.Query {
			s.reply(seq+1, wire.AppendErr(nil, 1927, "70100", "Connection was killed"))
			s.cl.W.Flush()
			return errQuit
		}
		if !k.Query {
			t.end() // first: the client must see its connection end, not its statement fail
		}
		t.killRunning()
	}
	if k.User != "" { // as the server, the number of threads killed
		return s.reply(seq+1, wire.AppendOK(nil, wire.HeaderOK, wire.OK{AffectedRows: uint64(len(targets)), Status: s.status()},
			s.cl.Has(mysql.CLIENT_SESSION_TRACK)))
	}
	return s.ok(seq + 1)
}

// killRunning stops the statement the session runs now, if any, on its server.
func (s *Session) killRunning() {
	c := s.running.Load()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Pool.Kill(ctx, c, false); err != nil {
		s.cfg.logger().Warn("KILL QUERY on the server", "server", c.Key.Addr, "err", err)
	}
}

// end ends the session from another one (KILL CONNECTION): its client's connection closes.
func (s *Session) end() {
	s.ended.Store(true)
	s.cl.Close()
}

// mayKillOthers asks the primary whether the client's account may kill other users' threads.
func (s *Session) mayKillOthers() bool {
	c, err := s.conn(routePrimary)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	row, err := c.Row(ctx, "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN ('SUPER', 'CONNECTION ADMIN') "+
		"AND GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')")
	return err == nil && row[0] != nil && *row[0] != "0"
}

// processKill is COM_PROCESS_KILL: KILL CONNECTION <id>.
func (s *Session) processKill(payload []byte, seq byte) error {
	if len(payload) < 5 {
		return s.reply(seq+1, wire.NewError(mysql.ER_MALFORMED_PACKET))
	}
	return s.kill(sqlclass.Kill{ID: uint64(binary.LittleEndian.Uint32(payload[1:]))}, seq)
}
