package session

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"

	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// What a client changed in its session is learnt from the servers' session tracking (every
// system variable, the schema, and state changes), not guessed from the statements: a USE
// inside a multi-statement, a SET run as a prepared statement and a variable a stored
// procedure sets are all reported. A replica connection is brought to the session's state
// before it runs a statement: its schema, then in one SET every variable changed since it was
// last brought up to date (the last value of each). What the reports do not explain (a state
// change by anything but a replayable SET or USE: user variables set in a query, temporary
// tables, prepared statements, a role) pins the session to the primary, and the connection it
// happened on is closed at the end rather than pooled (COM_RESET_CONNECTION keeps a role).

// setting is one variable the session set: its value and the change that set it.
type setting struct {
	value string
	gen   int
}

// state is the session's state that a connection must have before it runs a statement.
type state struct {
	vars    map[string]setting // system variables (lower-cased names) and user variables ("@name")
	gen     int                // counts changes; a connection that saw gen has them all
	applied map[*backend.Conn]int
	schema  string
	// multi: multi-statements are on (the client's capability at login; COM_SET_OPTION
	// changes it).
	multi bool
	// track is the client's own session tracking settings (what its OK packets carry);
	// trackKnown once a server told the defaults.
	track      backend.Tracking
	trackKnown bool
	charset    string // character_set_client
	// mode is the classifier's Mode for vars as of gen modeGen-1 (0: not computed).
	mode    sqlclass.Mode
	modeGen int
}

// notReplayed are the variables a replay leaves alone: the proxy's own settings (tracking, a
// replica's read-only mode), the transaction and autocommit (the status flags route them),
// and values about the primary's last statement.
var notReplayed = map[string]bool{
	"autocommit": true, "tx_read_only": true, "transaction_read_only": true, "last_gtid": true,
	"session_track_system_variables": true, "session_track_schema": true, "session_track_state_change": true,
	"session_track_transaction_info": true, "insert_id": true, "last_insert_id": true, "identity": true,
	"rand_seed1": true, "rand_seed2": true, "in_transaction": true, "gtid_seq_no": true, "pseudo_thread_id": true,
	"warning_count": true, "error_count": true, "server_id": true, "gtid_domain_id": true,
}

// changes are what one response reported.
type changes struct {
	vars   [][2]string // name, value, in order
	schema *string
	state  bool // a state change was reported
}

// onState is the Relay's OnState for a response of connection c: it collects the changes and
// returns what of them the client's own tracking settings show it.
func (s *Session) onState(ch *changes) func([]byte) []byte {
	return func(info []byte) []byte {
		var out []byte
		wire.StateEntries(info, func(typ byte, data []byte) {
			keep := true
			switch typ {
			case wire.TrackSystemVariables:
				name, value, ok := wire.StateVariable(data)
				if !ok {
					return
				}
				ch.vars = append(ch.vars, [2]string{name, value})
				s.clientTracking(name, value)
				keep = s.st.track.Wants(name)
			case wire.TrackSchema:
				if db, ok := wire.StateSchema(data); ok {
					ch.schema = &db
				}
				keep = s.st.track.Schema
			case wire.TrackStateChange:
				ch.state = true
				keep = s.st.track.State
			}
			if keep {
				out = wire.AppendStateEntry(out, typ, data)
			}
		})
		return out
	}
}

// clientTracking follows a change the client made to its own session tracking settings.
func (s *Session) clientTracking(name, value string) {
	switch strings.ToLower(name) {
	case "session_track_system_variables":
		s.st.track.ParseVariables(value)
	case "session_track_schema":
		s.st.track.Schema = value == "1" || strings.EqualFold(value, "ON")
	case "session_track_state_change":
		s.st.track.State = value == "1" || strings.EqualFold(value, "ON")
	default:
		return
	}
	s.retrack = true
}

// learn applies what a response of connection c reported. explained says the statement was
// one whose whole effect the reports and class.Set describe (a replayable SET, USE,
// COM_INIT_DB); ok that it succeeded.
func (s *Session) learn(c *backend.Conn, ch *changes, class sqlclass.Class, explained, ok bool) {
	before := s.st.gen
	skipState := c.SkipState
	c.SkipState = class.SetStatement
	for _, kv := range ch.vars {
		name, value := strings.ToLower(kv[0]), kv[1]
		switch {
		case class.SetStatement:
			// the statement's own values, restored (and reported) after it
		case name == "last_gtid":
			if value != "" && s.cfg.Consistency.tracksGTIDs() {
				s.wroteGTIDs(value)
			}
		default:
			s.set(name, value)
			switch name {
			case "character_set_connection":
				delete(s.st.vars, "collation_connection") // the character set's default collation now
			case "wait_timeout":
				// The client's idle limit: the proxy closes the client's connection, as the
				// server would (not a pooled server connection under it).
				if secs, err := strconv.ParseFloat(value, 64); err == nil && secs > 0 {
					s.clientIdle = time.Duration(secs * float64(time.Second))
					s.armedAt = time.Time{}
				}
			}
		}
	}
	if ch.schema != nil {
		s.st.schema, c.Schema = *ch.schema, *ch.schema
	}
	if ok && explained {
		for _, a := range class.Set {
			s.set(strings.ToLower(a.Name), a.Value)
		}
	}
	if ch.state && !explained && !class.SetStatement && !skipState {
		if !s.pinned {
			s.cfg.logger().Debug("the session changed state the proxy cannot replay: pinned to the primary", "server", c.Key.Addr)
		}
		s.pinned = true
		// What the classifier pins for (temporary tables, PREPARE, ...) a reset undoes; what
		// else changed, it cannot tell: a role, which a reset keeps, may be among it.
		c.Tainted = c.Tainted || !class.Pin
	}
	if s.st.applied[c] == before {
		s.st.applied[c] = s.st.gen // it made the changes itself
	}
	if s.retrack {
		s.retrack = false
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
		defer cancel()
		if err := c.Retrack(ctx); err != nil {
			s.drop(c, true)
		}
	}
}

// set records a variable's new value.
func (s *Session) set(name, value string) {
	if s.st.vars == nil {
		s.st.vars = make(map[string]setting)
	}
	if old, ok := s.st.vars[name]; ok && old.value == value {
		return
	}
	s.st.gen++
	s.st.vars[name] = setting{value: value, gen: s.st.gen}
	if name == "character_set_client" {
		s.st.charset = value
	}
}

// mode is how the servers read the session's statements now (computed again only after a
// change of the session's variables).
func (s *Session) mode() sqlclass.Mode {
	if s.st.modeGen == s.st.gen+1 {
		return s.st.mode
	}
	sqlMode, known := s.st.vars["sql_mode"]
	cs := s.st.charset
	if cs == "" {
		cs = "unknown"
		if coll, err := charset.GetCollationByID(int(s.cl.Collation)); err == nil {
			cs = coll.CharsetName
		}
		s.st.charset = cs
	}
	if cs == "unknown" {
		cs = "gbk" // a character set the proxy does not know is read as the riskiest
	}
	s.st.mode, s.st.modeGen = sqlclass.ModeOf(sqlMode.value, known, cs), s.st.gen+1
	return s.st.mode
}

// replay is the statement that brings a connection that saw the changes up to gen applied to
// the session's variables: one SET, character sets first, then collations, then the rest.
func (st *state) replay(applied int) string {
	var names []string
	for name, v := range st.vars {
		if v.gen > applied && !notReplayed[name] {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	rank := func(n string) int {
		switch {
		case strings.HasPrefix(n, "character_set_"):
			return 0
		case strings.HasPrefix(n, "collation_"):
			return 1
		case strings.HasPrefix(n, "@"):
			return 3
		}
		return 2
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
	var b strings.Builder
	b.WriteString("SET ")
	for i, name := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		if strings.HasPrefix(name, "@") {
			b.WriteString(name + " = " + st.vars[name].value) // a literal, as the client wrote it
			continue
		}
		b.WriteString("@@SESSION.`" + name + "` = " + sysValue(name, st.vars[name].value))
	}
	return b.String()
}

// sysValue is a system variable's reported value as SET takes it back: a number bare, NULL
// for an empty character_set_results, a string quoted (in hex when it holds a character that
// quoting rules treat differently).
func sysValue(name, v string) string {
	if v == "" && name == "character_set_results" {
		return "NULL"
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil && strings.Trim(v, "0123456789.-+eE") == "" {
		return v
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\'' || c == '\\' || c == '"' || c < ' ' || c >= 0x7f {
			return "X'" + strings.ToUpper(hexString(v)) + "'"
		}
	}
	return "'" + v + "'"
}

func hexString(v string) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 2*len(v))
	for i := 0; i < len(v); i++ {
		b = append(b, digits[v[i]>>4], digits[v[i]&15])
	}
	return string(b)
}

// sync brings c to the session's schema, option and variables.
func (s *Session) sync(c *backend.Conn) error {
	if !s.st.trackKnown && !c.Untracked {
		s.st.track, s.st.trackKnown = c.Defaults, true
	}
	if (s.st.schema == "" || c.Schema == s.st.schema) && s.st.applied[c] == s.st.gen && c.Multi == s.st.multi {
		return nil // the common case, checked first: no timer for a context per command
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if s.st.schema != "" && c.Schema != s.st.schema {
		if err := c.Exec(ctx, mysql.COM_INIT_DB, s.st.schema); err != nil {
			return s.replayFailed(c, err)
		}
		c.Schema = s.st.schema
	}
	if c.Multi != s.st.multi {
		opt := mysql.MYSQL_OPTION_MULTI_STATEMENTS_OFF
		if s.st.multi {
			opt = mysql.MYSQL_OPTION_MULTI_STATEMENTS_ON
		}
		if err := c.Exec(ctx, mysql.COM_SET_OPTION, string([]byte{byte(opt), byte(opt >> 8)})); err != nil {
			return s.replayFailed(c, err)
		}
		c.Multi = s.st.multi // not Dirty: whoever uses c next brings it to its own option here
	}
	if set := s.st.replay(s.st.applied[c]); set != "" {
		if err := c.Exec(ctx, mysql.COM_QUERY, set); err != nil {
			return s.replayFailed(c, err)
		}
	}
	s.st.applied[c] = s.st.gen
	return nil
}
