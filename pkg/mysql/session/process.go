package session

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/backend"
)

// Process is one client session as SHOW PROCESSLIST would show it, for the admin protocol's
// GET mysql processlist (slardarctl mysql processlist): who, from where, on which servers,
// doing what since when.
type Process struct {
	ID       uint32   `json:"id"`       // the connection id its client was told (CONNECTION_ID())
	Upstream string   `json:"upstream"` // the listener's (primary) upstream
	User     string   `json:"user"`
	Client   string   `json:"client"` // HOST:PORT
	Schema   string   `json:"schema"`
	Command  string   `json:"command"` // Sleep, Query, Execute, ... (the client command running)
	Time     float64  `json:"time"`    // seconds in this command, or asleep
	Info     string   `json:"info"`    // the statement running (up to infoMax bytes)
	Servers  []string `json:"servers"` // the server connections the session holds
	InTx     bool     `json:"in_transaction"`
	Pinned   bool     `json:"pinned"`
}

// infoMax bounds the statement text a process shows.
const infoMax = 1024

// activity is what a session does now, published by its own goroutine for others to read.
type activity struct {
	command, info, schema string
	since                 time.Time
	servers               []string
	inTx, pinned          bool
}

// commandNames are the client commands as the server's processlist names them.
var commandNames = map[byte]string{
	0x01: "Quit", 0x02: "Init DB", 0x03: "Query", 0x04: "Field List", 0x09: "Statistics", 0x0e: "Ping",
	0x11: "Change user", 0x16: "Prepare", 0x17: "Execute", 0x18: "Long Data", 0x19: "Close stmt",
	0x1a: "Reset stmt", 0x1b: "Set option", 0x1c: "Fetch", 0x1f: "Reset connection", 0xfa: "Execute",
}

// publish records what the session starts doing: the command of payload, or asleep (nil).
// Only the session's goroutine calls it; others read the record (processes).
func (s *Session) publish(payload []byte) {
	a := &activity{command: "Sleep", since: time.Now(), schema: s.st.schema, inTx: s.tx != nil, pinned: s.pinned}
	for _, c := range []*backend.Conn{s.tx, s.primary, s.replica} {
		if c != nil && !slices.Contains(a.servers, c.Key.Addr) {
			a.servers = append(a.servers, c.Key.Addr)
		}
	}
	if len(payload) > 0 {
		a.command = cmp.Or(commandNames[payload[0]], fmt.Sprintf("Command 0x%02x", payload[0]))
		switch payload[0] {
		case 0x03, 0x16: // COM_QUERY, COM_STMT_PREPARE: the text
			a.info = string(payload[1:min(len(payload), 1+infoMax)])
		case 0x17, 0xfa: // COM_STMT_EXECUTE, bulk: the prepared statement's text
			if len(payload) >= 5 {
				if st := s.stmts[binary.LittleEndian.Uint32(payload[1:])]; st != nil && len(st.sql) > 0 {
					a.info = string(st.sql[1:min(len(st.sql), 1+infoMax)])
				}
			}
		}
	}
	s.now.Store(a)
}

// Processes are the open sessions, by upstream and id.
func (r *Sessions) Processes() []Process {
	r.mu.Lock()
	all := make([]*Session, 0, len(r.m))
	for _, s := range r.m {
		all = append(all, s)
	}
	r.mu.Unlock()
	now := time.Now()
	out := make([]Process, 0, len(all))
	for _, s := range all {
		p := Process{ID: s.cl.ConnID, Upstream: s.write, User: s.userName(), Client: s.cl.Conn.RemoteAddr().String(), Command: "Sleep", Servers: []string{}}
		if a := s.now.Load(); a != nil {
			p.Command, p.Info, p.Schema, p.InTx, p.Pinned = a.command, a.info, a.schema, a.inTx, a.pinned
			p.Time = now.Sub(a.since).Round(time.Millisecond).Seconds()
			if a.servers != nil {
				p.Servers = a.servers
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Process) int { return cmp.Or(cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.ID, b.ID)) })
	return out
}

// ErrNoSession is Kill's error for an id no open session has.
var ErrNoSession = errors.New("no such session")

// Kill ends the session of id on the listener of upstream ("" when only one listener has a
// session of that id), as KILL CONNECTION does: its client's connection is closed and its
// running statement stopped on its server; with query, as KILL QUERY: only the statement.
func (r *Sessions) Kill(upstream string, id uint32, query bool) error {
	r.mu.Lock()
	var found []*Session
	for sid, s := range r.m {
		if sid.id == id && (upstream == "" || sid.upstream == upstream) {
			found = append(found, s)
		}
	}
	r.mu.Unlock()
	switch {
	case len(found) == 0:
		return fmt.Errorf("%w %d", ErrNoSession, id)
	case len(found) > 1:
		return fmt.Errorf("session id %d is on %d listeners: name it as UPSTREAM/%d", id, len(found), id)
	}
	t := found[0]
	if !query {
		t.end()
	}
	t.killRunning()
	return nil
}
