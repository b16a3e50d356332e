package session

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/internal/mysqlfake"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/front"
)

// Sessions over net.Pipe against scripted servers (internal/mysqlfake): a primary (server id 1)
// and a replica (2). What reaches which server is read from the fakes' query logs. The
// MariaDB-backed tests of mysql-proxy are the measure of what real servers do.

const (
	user = "app"
	pass = "app-secret"
)

type rig struct {
	primary, replica *mysqlfake.Server
	cfg              *Config
	done             sync.WaitGroup
}

func newRig(t *testing.T, mode Mode) *rig {
	t.Helper()
	r := &rig{primary: mysqlfake.Start(t, user, pass), replica: mysqlfake.Start(t, user, pass)}
	r.replica.ServerID = 2
	reg := &checkups.Registry{}
	for name, s := range map[string]*mysqlfake.Server{"db": r.primary, "db" + ReadSuffix: r.replica} {
		host, port, _ := net.SplitHostPort(s.Addr)
		if err := reg.PutJSON(name, []byte(`{"timeout":2,"servers":[{"host":"`+host+`","port":`+port+`}]}`)); err != nil {
			t.Fatal(err)
		}
	}
	pool := &backend.Pool{}
	t.Cleanup(pool.Close)
	users := func(name string) (front.User, bool) {
		if name == user {
			return front.User{Name: user, Password: pass}, true
		}
		return front.User{}, false
	}
	r.cfg = &Config{Log: testLog(t), Registry: reg, Pool: pool, Front: &front.Server{Users: users}, Consistency: Consistency{Mode: mode},
		Positions: &Positions{}, Counters: &Counters{}, Sessions: &Sessions{}}
	t.Cleanup(r.done.Wait)
	return r
}

// connect logs a client in through a session of the rig over net.Pipe.
func (r *rig) connect(t *testing.T, schema string) *client.Conn {
	t.Helper()
	return r.connectWith(t, schema, func(_ context.Context, sside net.Conn) {
		cl, err := r.cfg.Front.Accept(sside, front.Hello{})
		if err != nil {
			return
		}
		Serve(context.Background(), r.cfg, cl, "db", "client", nil)
	})
}

// connectWith logs a client in over net.Pipe; serve runs the proxy's side of the pipe (ctx
// lasts until the login is over).
func (r *rig) connectWith(t *testing.T, schema string, serve func(ctx context.Context, sside net.Conn)) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(context.Context, string, string) (net.Conn, error) {
		cside, sside := net.Pipe()
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			defer sside.Close()
			serve(ctx, sside)
		}()
		return cside, nil
	}
	// The fake frames results with EOF packets only (as servers before CLIENT_DEPRECATE_EOF).
	noDeprecateEOF := func(c *client.Conn) error { c.UnsetCapability(mysql.CLIENT_DEPRECATE_EOF); return nil }
	c, err := client.ConnectWithDialer(ctx, "tcp", "pipe", user, pass, schema, dial, noDeprecateEOF)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func value(t *testing.T, c *client.Conn, q string) string {
	t.Helper()
	res, err := c.Execute(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if res.Resultset == nil || len(res.Values) == 0 {
		return ""
	}
	v, err := res.GetString(0, 0)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// ran reports whether s received a statement containing q.
func ran(s *mysqlfake.Server, q string) bool {
	for _, got := range s.Queries() {
		if strings.Contains(got, q) {
			return true
		}
	}
	return false
}

// TestSplit: reads on the replica, writes on the primary; a transaction stays on the primary;
// a temporary table pins the session; user variables set are replayed before the next read.
func TestSplit(t *testing.T) {
	r := newRig(t, ModeNone)
	c := r.connect(t, "shop")
	if got := value(t, c, "SELECT @@server_id"); got != "2" {
		t.Fatalf("a read ran on server %s", got)
	}
	if _, err := c.Execute("UPDATE t SET a = 1"); err != nil || !ran(r.primary, "UPDATE t SET a = 1") || ran(r.replica, "UPDATE t") {
		t.Fatalf("a write: %v", err)
	}
	if _, err := c.Execute("SET @v = 7"); err != nil || !ran(r.primary, "SET @v = 7") {
		t.Fatalf("SET: %v, on the primary %v", err, ran(r.primary, "SET @v = 7"))
	}
	c.Begin()
	if got := value(t, c, "SELECT @@server_id"); got != "1" {
		t.Fatalf("a read in a transaction ran on server %s", got)
	}
	c.Commit()
	if got := value(t, c, "SELECT @@server_id"); got != "2" {
		t.Fatalf("a read after the transaction ran on server %s", got)
	}
	if _, err := c.Execute("CREATE TEMPORARY TABLE tmp (a INT)"); err != nil {
		t.Fatal(err)
	}
	if got := value(t, c, "SELECT @@server_id"); got != "1" {
		t.Fatalf("a read of a pinned session ran on server %s", got)
	}
	if n := r.cfg.Counters.Reads.Load(); n < 2 {
		t.Fatalf("%d reads counted", n)
	}
}

// TestCommands: the commands beside COM_QUERY, and errors passed on as the server's.
func TestCommands(t *testing.T) {
	r := newRig(t, ModeSession)
	c := r.connect(t, "")
	if err := c.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.UseDB("shop"); err != nil {
		t.Fatalf("use: %v", err)
	}
	if got := value(t, c, "/*master*/ SELECT DATABASE()"); got != "shop" {
		t.Fatalf("the schema on the primary: %q", got)
	}
	_, err := c.Execute("ERROR 1146")
	var me *mysql.MyError
	if me, _ = err.(*mysql.MyError); me == nil || me.Code != 1146 {
		t.Fatalf("a server's error: %v", err)
	}
	st, err := c.Prepare("SELECT ? + ?")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	res, err := st.Execute(1, 2)
	if err != nil || len(res.Values) != 1 {
		t.Fatalf("execute: %v %v", res, err)
	}
	st.Close()
	if _, err := c.FieldList("t", ""); err != nil {
		t.Fatalf("field list: %v", err)
	}
	if err := c.SetAutoCommit(); err != nil {
		t.Fatal(err)
	}
	id := value(t, c, "SELECT CONNECTION_ID()")
	if _, err := c.Execute("KILL QUERY " + id); err != nil {
		t.Fatalf("KILL QUERY of its own id: %v", err)
	}
	if _, err := c.Execute("KILL 999999"); err == nil || !strings.Contains(err.Error(), "1094") {
		t.Fatalf("KILL of no session: %v", err)
	}
}

// TestReplicaDown: with the replica gone reads fall back to the primary.
func TestReplicaDown(t *testing.T) {
	r := newRig(t, ModeNone)
	r.replica.Close()
	c := r.connect(t, "")
	if got := value(t, c, "SELECT @@server_id"); got != "1" {
		t.Fatalf("a read with the replica down ran on server %s", got)
	}
	if r.cfg.Counters.PrimaryReads.Load() == 0 {
		t.Fatal("the fallback read was not counted")
	}
}

// TestWindowConsistency: in window mode a read right after a write stays on the primary.
func TestWindowConsistency(t *testing.T) {
	r := newRig(t, ModeWindow)
	r.cfg.Consistency.Window = time.Minute
	c := r.connect(t, "")
	if _, err := c.Execute("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if got := value(t, c, "SELECT @@server_id"); got != "1" {
		t.Fatalf("a read within the window ran on server %s", got)
	}
	if r.cfg.Positions.WindowReads.Load() != 1 {
		t.Fatalf("window reads %d", r.cfg.Positions.WindowReads.Load())
	}
}

// raw sends one command and returns the first packet of its answer.
func raw(t *testing.T, c *client.Conn, payload ...byte) []byte {
	t.Helper()
	c.ResetSequence()
	if err := c.WritePacket(append([]byte{0, 0, 0, 0}, payload...)); err != nil {
		t.Fatal(err)
	}
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSessionState: a system variable set on the primary is replayed on the replica before
// the next read; COM_RESET_CONNECTION forgets it; SET NAMES changes the character set.
func TestSessionState(t *testing.T) {
	r := newRig(t, ModeNone)
	c := r.connect(t, "shop")
	if _, err := c.Execute("SET sql_mode = 'ANSI_QUOTES'"); err != nil {
		t.Fatal(err)
	}
	value(t, c, "SELECT 1")
	if !ran(r.replica, "ANSI_QUOTES") {
		t.Fatalf("sql_mode not replayed on the replica: %q", r.replica.Queries())
	}
	if p := raw(t, c, mysql.COM_RESET_CONNECTION); p[0] != mysql.OK_HEADER {
		t.Fatalf("COM_RESET_CONNECTION: %x", p)
	}
	if err := c.SetCharset("latin1"); err != nil {
		t.Fatal(err)
	}
	value(t, c, "SELECT 2")
	if p := raw(t, c, mysql.COM_SET_OPTION, 1, 0); p[0] != mysql.EOF_HEADER {
		t.Fatalf("COM_SET_OPTION: %x", p)
	}
	if p := raw(t, c, 0x7E); p[0] != mysql.ERR_HEADER {
		t.Fatalf("an unknown command: %x", p)
	}
}

// TestSessionConsistency: in session mode a read after a write waits for the replica to have
// applied it (MASTER_GTID_WAIT), then runs there.
func TestSessionConsistency(t *testing.T) {
	r := newRig(t, ModeSession)
	r.replica.Applied = "0-1-1"
	c := r.connect(t, "")
	if _, err := c.Execute("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if got := value(t, c, "SELECT @@server_id"); got != "2" {
		t.Fatalf("a read after a write ran on server %s", got)
	}
	if !ran(r.replica, "MASTER_GTID_WAIT('0-1-1'") {
		t.Fatalf("no wait for the write's GTID: %q", r.replica.Queries())
	}
	value(t, c, "SELECT @@server_id")
	if n := r.cfg.Positions.Waits.Load(); n != 1 {
		t.Fatalf("%d waits; want 1 (the replica's position is known after the first)", n)
	}
}

// TestKillOtherSession: KILL CONNECTION ends another session of the same user; KILL USER
// counts the sessions it ended.
func TestKillOtherSession(t *testing.T) {
	r := newRig(t, ModeNone)
	victim := r.connect(t, "")
	id := value(t, victim, "SELECT CONNECTION_ID()")
	killer := r.connect(t, "")
	if _, err := killer.Execute("KILL CONNECTION " + id); err != nil {
		t.Fatalf("KILL: %v", err)
	}
	if _, err := victim.Execute("SELECT 1"); err == nil {
		t.Fatal("a killed session runs on")
	}
	other := r.connect(t, "")
	value(t, other, "SELECT 1")
	// The killed session leaves the registry when its goroutine has ended, a moment later.
	testutil.WaitFor(t, "the killed session gone", 10*time.Second, func() bool { return len(r.cfg.Sessions.ofUser("db", user)) == 2 })
	res, err := killer.Execute("KILL QUERY USER " + user)
	if err != nil || res.AffectedRows != 2 { // killer and other
		t.Fatalf("KILL QUERY USER: %v %v", res, err)
	}
}

// TestAnchor: the handshake announces the thread id of the connection the session then uses,
// so CONNECTION_ID() and the server agree.
func TestAnchor(t *testing.T) {
	r := newRig(t, ModeNone)
	var announced uint32
	c := r.connectWith(t, "", func(ctx context.Context, sside net.Conn) {
		a := TakeAnchor(ctx, r.cfg, "db", "127.0.0.1", backend.Key{Caps: front.Capabilities&backend.Framing | mysql.CLIENT_SESSION_TRACK})
		if a == nil {
			t.Error("no anchor")
			return
		}
		announced = a.ThreadID()
		cl, err := r.cfg.Front.Accept(sside, front.Hello{ConnID: a.ThreadID()})
		if err != nil {
			a.Return(r.cfg.Pool)
			return
		}
		Serve(context.Background(), r.cfg, cl, "db", "client", a)
	})
	if c.GetConnectionID() != announced || announced == 0 {
		t.Fatalf("the handshake announced %d, the anchor is %d", c.GetConnectionID(), announced)
	}
	if _, err := c.Execute("UPDATE t SET a = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.primary.Conn(announced); err != nil {
		t.Fatalf("the anchor's thread %d is not a connection of the primary: %v", announced, err)
	}
}

// TestServerGone: a session whose idle server connection was closed moves to another when its
// state can move; one in a transaction is told the connection was lost.
func TestServerGone(t *testing.T) {
	r := newRig(t, ModeNone)
	c := r.connect(t, "")
	if _, err := c.Execute("UPDATE t SET a = 3"); err != nil {
		t.Fatal(err)
	}
	closeAll := func() {
		for _, id := range r.primary.IDs() {
			r.primary.Kill(id)
		}
	}
	closeAll()
	time.Sleep(deadCheckAfter + 100*time.Millisecond) // a held connection is checked after this long unused
	if _, err := c.Execute("UPDATE t SET a = 4"); err != nil {
		t.Fatalf("a movable session after its server connection closed: %v", err)
	}
	if err := c.Begin(); err != nil {
		t.Fatal(err)
	}
	closeAll()
	time.Sleep(deadCheckAfter + 100*time.Millisecond)
	if _, err := c.Execute("UPDATE t SET a = 5"); err == nil {
		t.Fatal("a transaction went on after its server connection closed")
	}
}

// testLog logs to the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestStatementsAndOddCommands: prepared statements (their limit, reset, long data), KILL by
// COM_PROCESS_KILL, COM_STATISTICS, multi-statements.
func TestStatementsAndOddCommands(t *testing.T) {
	r := newRig(t, ModeNone)
	r.cfg.MaxStmts = 2
	c := r.connect(t, "")
	a, err := c.Prepare("SELECT ?")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Prepare("UPDATE t SET a = ?")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepare("SELECT 3"); err == nil {
		t.Fatal("a third prepared statement beyond the limit of 2")
	}
	if _, err := b.Execute(7); err != nil {
		t.Fatalf("a prepared write: %v", err)
	}
	id := binary.LittleEndian.AppendUint32(nil, a.ID)
	if p := raw(t, c, append([]byte{mysql.COM_STMT_RESET}, id...)...); p[0] != mysql.OK_HEADER {
		t.Fatalf("COM_STMT_RESET: %x", p)
	}
	if _, err := a.Execute("x"); err != nil {
		t.Fatalf("execute after reset: %v", err)
	}
	a.Close()
	b.Close()
	if p := raw(t, c, mysql.COM_STATISTICS); len(p) == 0 {
		t.Fatal("COM_STATISTICS: nothing")
	}
	if p := raw(t, c, append([]byte{mysql.COM_PROCESS_KILL}, 0xFF, 0xFF, 0xFF, 0x7F)...); p[0] != mysql.ERR_HEADER {
		t.Fatalf("COM_PROCESS_KILL of no session: %x", p)
	}
	if p := raw(t, c, mysql.COM_DEBUG); len(p) == 0 {
		t.Fatal("COM_DEBUG: nothing")
	}
}
