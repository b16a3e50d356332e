package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
	"gopkg.in/yaml.v3"
)

// Mode is a listener's read-after-write mode: what a read on a replica must have seen
// (consistency: in the configuration file; "" is ModeSession).
type Mode string

// The modes.
const (
	// ModeSession: a client never reads older data than it wrote. The primary reports the GTID of
	// each write (session tracking of last_gtid); a read goes to a replica whose position covers
	// the session's GTIDs, after MASTER_GTID_WAIT if need be, else to the primary.
	ModeSession Mode = "session"
	// ModeGlobal: as ModeSession, with the highest GTID per domain written through this proxy.
	ModeGlobal Mode = "global"
	// ModeWindow: reads go to the primary for a while after the session's last write (servers
	// without GTIDs).
	ModeWindow Mode = "window"
	// ModeNone: the plain split.
	ModeNone Mode = "none"
)

// Modes are the modes, in the order help texts list them.
var Modes = []Mode{ModeSession, ModeGlobal, ModeWindow, ModeNone}

// Effective is the mode m means: "" is ModeSession.
func (m Mode) Effective() Mode {
	if m == "" {
		return ModeSession
	}
	return m
}

// UnmarshalText implements encoding.TextUnmarshaler: one of Modes.
func (m *Mode) UnmarshalText(b []byte) error {
	if !slices.Contains(Modes, Mode(b)) {
		names := make([]string, len(Modes))
		for i, x := range Modes {
			names[i] = string(x)
		}
		return fmt.Errorf("consistency %q: want one of %s", b, strings.Join(names, ", "))
	}
	*m = Mode(b)
	return nil
}

// UnmarshalYAML reads a mode from a YAML scalar; its errors start "line L column C:", where the
// configuration loader puts the key's name.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error {
	if err := m.UnmarshalText([]byte(n.Value)); err != nil || n.Kind != yaml.ScalarNode {
		if err == nil {
			err = errors.New("want a mode name")
		}
		return fmt.Errorf("line %d column %d: %w", n.Line, n.Column, err)
	}
	return nil
}

// Defaults of consistency.
const (
	DefaultWindow   = 500 * time.Millisecond
	DefaultGTIDWait = time.Second
)

// Consistency is a listener's read-after-write setting.
type Consistency struct {
	Mode     Mode          // "" is ModeSession
	Window   time.Duration // ModeWindow: how long after a write reads stay on the primary
	GTIDWait time.Duration // Session, Global: MASTER_GTID_WAIT's timeout before the primary serves
}

func (c Consistency) mode() Mode { return c.Mode.Effective() }

// tracksGTIDs says whether backend connections need last_gtid tracking.
func (c Consistency) tracksGTIDs() bool { return c.mode() == ModeSession || c.mode() == ModeGlobal }

func (c Consistency) window() time.Duration {
	if c.Window > 0 {
		return c.Window
	}
	return DefaultWindow
}

func (c Consistency) gtidWait() time.Duration {
	if c.GTIDWait > 0 {
		return c.GTIDWait
	}
	return DefaultGTIDWait
}

// gtidSet is a MariaDB GTID position: per replication domain, the last GTID (its server id
// and sequence number; a domain's sequence numbers order its events).
type gtidSet map[uint32]gtid

type gtid struct {
	server uint32
	seq    uint64
}

// parseGTIDs reads "domain-server-seq[,domain-server-seq...]" (gtid_slave_pos, last_gtid).
func parseGTIDs(s string) (gtidSet, bool) {
	set := gtidSet{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, false
		}
		domain, err1 := strconv.ParseUint(f[0], 10, 32)
		server, err2 := strconv.ParseUint(f[1], 10, 32)
		seq, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, false
		}
		set.add(uint32(domain), gtid{uint32(server), seq})
	}
	return set, true
}

func (g gtidSet) add(domain uint32, id gtid) {
	if cur, ok := g[domain]; !ok || id.seq > cur.seq {
		g[domain] = id
	}
}

func (g gtidSet) merge(o gtidSet) {
	for d, id := range o {
		g.add(d, id)
	}
}

// covers says whether position g has applied everything of need.
func (g gtidSet) covers(need gtidSet) bool {
	for d, id := range need {
		if cur, ok := g[d]; !ok || cur.seq < id.seq {
			return false
		}
	}
	return true
}

// String is the position in MASTER_GTID_WAIT's form.
func (g gtidSet) String() string {
	domains := make([]uint32, 0, len(g))
	for d := range g {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	var b strings.Builder
	for i, d := range domains {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d-%d", d, g[d].server, g[d].seq)
	}
	return b.String()
}

// Positions is what the proxy knows of replica positions, shared by every session of a daemon:
// positions learned from waits that succeeded, the ones the checkups mysql heartbeat polls
// (gtid_slave_pos), and, for Global, the highest GTIDs written through the proxy.
type Positions struct {
	mu      sync.Mutex
	learned map[string]gtidSet // server address → position known applied
	written gtidSet

	// Counters for the metrics: reads that needed a MASTER_GTID_WAIT that succeeded, reads that
	// went to the primary because the wait timed out or failed, reads on the primary inside
	// a window.
	Waits, WaitFallbacks, WindowReads atomic.Int64
	lastLog                           atomic.Int64 // unix nanoseconds of the last fallback log line
}

// covered says whether the replica at addr (a server of upstream) is known to have applied need.
func (p *Positions) covered(reg *checkups.Registry, upstream, addr string, need gtidSet) bool {
	p.mu.Lock()
	known := p.learned[addr]
	p.mu.Unlock()
	if known.covers(need) {
		return true
	}
	if pos, ok := reg.Replication(upstream, addr)["gtid_slave_pos"].(string); ok {
		if set, ok := parseGTIDs(pos); ok && set.covers(need) {
			p.learn(addr, set)
			return true
		}
	}
	return false
}

// learn records that addr has applied pos.
func (p *Positions) learn(addr string, pos gtidSet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.learned == nil {
		p.learned = make(map[string]gtidSet)
	}
	if p.learned[addr] == nil {
		p.learned[addr] = gtidSet{}
	}
	p.learned[addr].merge(pos)
}

// wrote records GTIDs a session's write produced (for Global).
func (p *Positions) wrote(set gtidSet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written == nil {
		p.written = gtidSet{}
	}
	p.written.merge(set)
}

// global is a copy of the highest GTIDs written through the proxy.
func (p *Positions) global() gtidSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(gtidSet, len(p.written))
	out.merge(p.written)
	return out
}

// logDue reports whether a fallback may be logged now (at most one line a second).
func (p *Positions) logDue() bool {
	now := time.Now().UnixNano()
	last := p.lastLog.Load()
	return now-last >= int64(time.Second) && p.lastLog.CompareAndSwap(last, now)
}

// need is the position a read on a replica must see, by the listener's mode (nil: any).
func (s *Session) need() gtidSet {
	switch s.cfg.Consistency.mode() {
	case ModeSession:
		return s.written
	case ModeGlobal:
		return s.cfg.Positions.global()
	}
	return nil
}

// wroteGTIDs records the last_gtid a write of the session reported (Session and Global).
func (s *Session) wroteGTIDs(value string) {
	got, ok := parseGTIDs(value)
	if !ok {
		return
	}
	if s.written == nil {
		s.written = gtidSet{}
	}
	s.written.merge(got)
	s.cfg.Positions.wrote(got)
}

// consistent makes replica connection c fit for a read: it has applied what the session must
// see, at once or after a MASTER_GTID_WAIT. false: the read goes to the primary.
func (s *Session) consistent(c *backend.Conn) (bool, error) {
	need := s.need()
	if len(need) == 0 || s.cfg.Positions.covered(s.cfg.Registry, s.read, c.Key.Addr, need) {
		return true, nil
	}
	wait := s.cfg.Consistency.gtidWait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), wait+5*time.Second)
	defer cancel()
	// The replica's position comes back with the answer: other sessions' reads need no wait
	// for what it has applied.
	row, err := c.Row(ctx, fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %s), @@gtid_slave_pos", need, strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)))
	if err != nil {
		if _, ok := err.(*wire.ErrPacket); !ok {
			return false, err // the connection failed
		}
	}
	null := err == nil && row[0] == nil
	if err == nil && !null && *row[0] == "0" {
		s.cfg.Positions.Waits.Add(1)
		s.stats.GTIDWaits++
		s.cfg.Positions.learn(c.Key.Addr, need)
		if row[1] != nil {
			if pos, ok := parseGTIDs(*row[1]); ok {
				s.cfg.Positions.learn(c.Key.Addr, pos)
			}
		}
		return true, nil
	}
	s.cfg.Positions.WaitFallbacks.Add(1)
	s.stats.GTIDFallbacks++
	if s.cfg.Positions.logDue() {
		why := "MASTER_GTID_WAIT timed out after " + wait.String()
		if err != nil {
			why = err.Error()
		} else if null {
			why = "MASTER_GTID_WAIT returned NULL (replication not running?)"
		}
		s.cfg.logger().Warn("read on the primary: the replica has not applied the session's writes", "read_upstream", s.read,
			"server", c.Key.Addr, "gtid", need.String(), "reason", why)
	}
	return false, nil
}

// inWindow says whether a read must stay on the primary after a recent write (Window).
func (s *Session) inWindow() bool {
	return withinWindow(s.cfg.Consistency.mode(), s.lastWrite, time.Now(), s.cfg.Consistency.window())
}

// countWindowRead counts a read the window sent to the primary.
func (s *Session) countWindowRead() {
	s.cfg.Positions.WindowReads.Add(1)
	s.stats.WindowReads++
}
