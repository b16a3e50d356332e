// Package mysqlfake is a scripted MySQL server for tests that need no real one: it logs a user
// in (mysql_native_password), answers the statements the proxy and its tests send from a small
// built-in script (or a test's own), keeps per-connection transaction and autocommit status,
// and lets one connection's KILL stop another's SLEEP. The protocol side is go-mysql's server
// package; what the answers mean is here. Tests against real MariaDB servers stay the measure:
// this is for the proxy's own packages, to test their decisions alone.
package mysqlfake

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// Version is what the fake's handshake announces.
const Version = "10.11.99-MariaDB-fake"

// Server is a listening fake.
type Server struct {
	Addr     string
	User     string
	Password string
	ServerID int
	// Script, when set, answers a query first; handled false leaves it to the built-in script.
	Script func(c *Conn, query string) (res *mysql.Result, err error, handled bool)

	// Applied is the replica's GTID position (gtid_slave_pos) that MASTER_GTID_WAIT compares
	// with; a primary numbers its writes 0-<ServerID>-<n> and reports each as last_gtid.
	Applied string

	ln      net.Listener
	seq     atomic.Int64 // the primary's writes
	srv     *server.Server
	mu      sync.Mutex
	conns   map[uint32]*Conn
	opened  atomic.Int64
	queries []string
}

// Conn is one client connection of the fake.
type Conn struct {
	ID   uint32
	s    *Server
	sc   *server.Conn
	nc   net.Conn // closed from other goroutines (go-mysql's Close is not safe there)
	mu   sync.Mutex
	kill chan struct{} // closed by KILL QUERY of this connection's running statement
	// running is kill as it was when the statement running now was received: a KILL QUERY
	// after Queries shows the statement stops it, however late it starts waiting.
	running <-chan struct{}
	Schema  string
}

// Start serves a fake on a loopback port until the test ends.
func Start(t testing.TB, user, password string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), User: user, Password: password, ServerID: 1, ln: ln,
		srv: server.NewServer(Version, 45, mysql.AUTH_NATIVE_PASSWORD, nil, nil), conns: map[uint32]*Conn{}}
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Close stops listening and closes every connection.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.nc.Close()
	}
}

// Open is how many connections are logged in now; Opened how many ever were.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Opened is how many connections ever logged in.
func (s *Server) Opened() int64 { return s.opened.Load() }

// Queries are the statements received, in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func (s *Server) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(nc)
	}
}

func (s *Server) handle(nc net.Conn) {
	c := &Conn{s: s, nc: nc, kill: make(chan struct{})}
	auth := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
	if err := auth.AddUser(s.User, s.Password); err != nil {
		nc.Close()
		return
	}
	sc, err := s.srv.NewCustomizedConn(&multiStatements{Conn: nc}, auth, handler{c})
	if err != nil {
		nc.Close()
		return
	}
	c.sc, c.ID = sc, sc.ConnectionID()
	sc.SetStatus(mysql.SERVER_STATUS_AUTOCOMMIT)
	s.mu.Lock()
	s.conns[c.ID] = c
	s.mu.Unlock()
	s.opened.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.conns, c.ID)
		s.mu.Unlock()
	}()
	for !sc.Closed() {
		if err := sc.HandleCommand(); err != nil {
			return
		}
	}
}

// multiStatements adds CLIENT_MULTI_STATEMENTS to the capabilities the handshake offers (go-mysql's
// server does not let it be set; every MariaDB offers it, and the proxy asks for it).
type multiStatements struct {
	net.Conn
	done bool
}

func (m *multiStatements) Write(p []byte) (int, error) {
	if !m.done {
		m.done = true
		// header 4, protocol 1, version NUL-terminated, thread id 4, salt 8, filler 1, caps 2,
		// collation 1, status 2: then the upper two bytes of the capabilities.
		if i := 5 + len(Version) + 1 + 4 + 8 + 1 + 2 + 1 + 2; len(p) > i+1 {
			p = append([]byte(nil), p...)
			p[i] |= byte(mysql.CLIENT_MULTI_STATEMENTS >> 16)
		}
	}
	return m.Conn.Write(p)
}

// handler answers one connection's commands.
type handler struct{ c *Conn }

func (h handler) UseDB(name string) error {
	h.c.Schema = name
	return nil
}

func (h handler) HandleQuery(q string) (*mysql.Result, error) {
	c := h.c
	c.running = c.killed()
	c.s.mu.Lock()
	c.s.queries = append(c.s.queries, q)
	c.s.mu.Unlock()
	if c.s.Script != nil {
		if res, err, ok := c.s.Script(c, q); ok {
			return res, err
		}
	}
	return c.builtin(q)
}

func (h handler) HandleFieldList(table, wildcard string) ([]*mysql.Field, error) {
	return []*mysql.Field{{Name: []byte("id"), Table: []byte(table), Type: mysql.MYSQL_TYPE_LONG}}, nil
}

func (h handler) HandleStmtPrepare(q string) (int, int, any, error) {
	return strings.Count(q, "?"), 1, q, nil
}

func (h handler) HandleStmtExecute(ctx any, q string, args []any) (*mysql.Result, error) {
	rs, err := mysql.BuildSimpleResultset([]string{"v"}, [][]any{{int64(len(args))}}, true)
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

func (h handler) HandleStmtClose(any) error { return nil }

func (h handler) HandleOtherCommand(cmd byte, data []byte) error {
	switch cmd {
	case mysql.COM_RESET_CONNECTION, mysql.COM_CHANGE_USER, mysql.COM_SET_OPTION:
		h.c.sc.ClearInTransaction()
		return nil
	}
	return mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "unknown command")
}

// Rows is a text result set of one row.
func Rows(names []string, row []any) (*mysql.Result, error) {
	rs, err := mysql.BuildSimpleTextResultset(names, [][]any{row})
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

var (
	sleepRe   = regexp.MustCompile(`(?i)^(?:/\*.*?\*/\s*)?SELECT SLEEP\((\d+(?:\.\d+)?)\)`)
	killRe    = regexp.MustCompile(`(?i)^KILL (QUERY |CONNECTION )?(\d+)`)
	errRe     = regexp.MustCompile(`(?i)^ERROR (\d+)`)
	literalRe = regexp.MustCompile(`(?i)^SELECT (\d+)$`)
)

// builtin is the built-in script: what the proxy sends on its own (session tracking, the
// defaults it reads, KILL) and what the tests ask (CONNECTION_ID(), @@server_id, SLEEP).
func (c *Conn) builtin(q string) (*mysql.Result, error) {
	t := strings.TrimSpace(q)
	u := strings.ToUpper(t)
	switch {
	case strings.HasPrefix(u, "SELECT @@SESSION.SESSION_TRACK_SYSTEM_VARIABLES"):
		return Rows([]string{"vars", "schema", "state", "max_connections", "last_gtid"},
			[]any{"autocommit,character_set_client", "OFF", "OFF", "100", nil})
	case strings.HasPrefix(u, "SET "), u == "DO 1":
		switch compact := strings.ReplaceAll(u, " ", ""); {
		case strings.Contains(compact, "AUTOCOMMIT=0"):
			c.sc.UnsetStatus(mysql.SERVER_STATUS_AUTOCOMMIT)
		case strings.Contains(compact, "AUTOCOMMIT=1"):
			c.sc.SetStatus(mysql.SERVER_STATUS_AUTOCOMMIT)
		}
		return c.tracked(t), nil
	case strings.HasPrefix(u, "SELECT MASTER_GTID_WAIT("):
		return Rows([]string{"wait", "@@gtid_slave_pos"}, []any{int64(0), c.s.Applied})
	case u == "BEGIN" || strings.HasPrefix(u, "START TRANSACTION"):
		c.sc.SetInTransaction()
		return nil, nil
	case u == "COMMIT" || u == "ROLLBACK":
		c.sc.ClearInTransaction()
		return nil, nil
	case strings.Contains(u, "CONNECTION_ID()"):
		return Rows([]string{"CONNECTION_ID()"}, []any{int64(c.ID)})
	case strings.Contains(u, "@@SERVER_ID"):
		return Rows([]string{"@@server_id"}, []any{int64(c.s.ServerID)})
	case strings.Contains(u, "DATABASE()"):
		return Rows([]string{"DATABASE()"}, []any{c.Schema})
	}
	if m := sleepRe.FindStringSubmatch(t); m != nil {
		secs, _ := strconv.ParseFloat(m[1], 64)
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			return Rows([]string{"SLEEP"}, []any{int64(0)})
		case <-c.running:
			return nil, mysql.NewError(mysql.ER_QUERY_INTERRUPTED, "Query execution was interrupted")
		}
	}
	if m := killRe.FindStringSubmatch(t); m != nil {
		id, _ := strconv.ParseUint(m[2], 10, 32)
		return nil, c.s.kill(uint32(id), strings.EqualFold(strings.TrimSpace(m[1]), "QUERY"))
	}
	if m := errRe.FindStringSubmatch(t); m != nil {
		code, _ := strconv.Atoi(m[1])
		return nil, mysql.NewError(uint16(code), "scripted error")
	}
	if m := literalRe.FindStringSubmatch(t); m != nil { // SELECT 42 (CONNECTION_ID() as the proxy rewrote it)
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return Rows([]string{m[1]}, []any{n})
	}
	if strings.HasPrefix(u, "SELECT") || strings.HasPrefix(u, "SHOW") {
		return Rows([]string{"1"}, []any{int64(1)})
	}
	// A write: numbered, and reported as last_gtid as MariaDB's session tracking does.
	gtid := fmt.Sprintf("0-%d-%d", c.s.ServerID, c.s.seq.Add(1))
	return &mysql.Result{AffectedRows: 1, Status: mysql.SERVER_SESSION_STATE_CHANGED,
		SessionTracking: &mysql.SessionTrackingInfo{Variables: map[string]string{"last_gtid": gtid}}}, nil
}

// setVar reads "SET [@@][SESSION.]name = value" of a system variable (not a user variable).
var setVar = regexp.MustCompile(`(?i)^SET\s+(?:@@(?:SESSION\.)?|SESSION\s+)?([a-z_]+)\s*=\s*'?([^',]*)'?$`)

// tracked is a SET's OK: a system variable's new value reported as session tracking does; a
// user variable as a state change.
func (c *Conn) tracked(q string) *mysql.Result {
	res := &mysql.Result{Status: mysql.SERVER_SESSION_STATE_CHANGED, SessionTracking: &mysql.SessionTrackingInfo{State: "1"}}
	if m := setVar.FindStringSubmatch(q); m != nil && !strings.HasPrefix(strings.ToLower(m[1]), "session_track") {
		res.SessionTracking = &mysql.SessionTrackingInfo{Variables: map[string]string{strings.ToLower(m[1]): m[2]}}
	}
	return res
}

func (c *Conn) killed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kill
}

// kill stops connection id's running statement (query) or closes it.
func (s *Server) kill(id uint32, query bool) error {
	s.mu.Lock()
	c := s.conns[id]
	s.mu.Unlock()
	if c == nil {
		return mysql.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d", id))
	}
	c.mu.Lock()
	close(c.kill)
	c.kill = make(chan struct{})
	c.mu.Unlock()
	if !query {
		c.nc.Close()
	}
	return nil
}

// IDs are the ids of the connections logged in now.
func (s *Server) IDs() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]uint32, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	return ids
}

// Kill closes connection id, as the server's KILL CONNECTION would.
func (s *Server) Kill(id uint32) error { return s.kill(id, false) }

// ErrNoConn is Conn's error for an id no connection has.
var ErrNoConn = errors.New("no such connection")

// Conn returns the connection of id.
func (s *Server) Conn(id uint32) (*Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[id]
	if c == nil {
		return nil, ErrNoConn
	}
	return c, nil
}
