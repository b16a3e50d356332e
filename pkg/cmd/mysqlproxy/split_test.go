package mysqlproxy

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// conn is one client connection through the proxy (go-sql-driver, text protocol).
func conn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *sql.Conn, q string) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func str(t *testing.T, c *sql.Conn, q string) string {
	t.Helper()
	var s sql.NullString
	if err := c.QueryRowContext(context.Background(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

// TestReadWriteSplit: which server answers, statement by statement (read from @@server_id).
func TestReadWriteSplit(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	db := openDB(t, addr, "")
	c := conn(t, db)
	where := func(q string) int { t.Helper(); return serverID(t, c, q) }
	run(t, c, "create table if not exists split (id int primary key, v int)")
	run(t, c, "replace into split values (1, 1)")
	syncReplica(t)
	tests := []struct {
		q    string
		want int
	}{
		{"select @@server_id", replicaID},
		{"SELECT /* a comment */ @@server_id", replicaID},
		{"/*master*/ select @@server_id", primaryID},
		{"select /*+ primary */ @@server_id", primaryID},
		{"select @@server_id from split for update", primaryID},
		{"select @@server_id from dual lock in share mode", primaryID},
		{"(select @@server_id)", replicaID},
		{"with x as (select @@server_id as s) select s from x", replicaID},
	}
	for _, tt := range tests {
		if got := where(tt.q); got != tt.want {
			t.Errorf("%s: server %d; want %d", tt.q, got, tt.want)
		}
	}
	// Transactions stay on the primary, known from the status flags.
	run(t, c, "begin")
	if got := where("select @@server_id"); got != primaryID {
		t.Errorf("in a transaction: server %d", got)
	}
	run(t, c, "commit")
	if got := where("select @@server_id"); got != replicaID {
		t.Errorf("after commit: server %d", got)
	}
	run(t, c, "start transaction read only")
	if got := where("select @@server_id"); got != replicaID {
		t.Errorf("read-only transaction: server %d", got)
	}
	run(t, c, "commit")
	run(t, c, "set autocommit = 0")
	if got := where("select @@server_id"); got != primaryID {
		t.Errorf("autocommit=0: server %d", got)
	}
	run(t, c, "commit")
	run(t, c, "set autocommit = 1")
	if got := where("select @@server_id"); got != replicaID {
		t.Errorf("autocommit=1 again: server %d", got)
	}
}

// TestSessionStateReplayed: SET and USE run on the primary and are replayed on the replica
// connection before its next read.
func TestSessionStateReplayed(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c := conn(t, openDB(t, addr, ""))
	run(t, c, "set @x = 42, time_zone = '+03:00', sql_mode = 'ANSI_QUOTES'")
	run(t, c, "set names latin1")
	run(t, c, "use mysql")
	got := str(t, c, "select concat_ws(',', @x, @@time_zone, @@sql_mode, @@character_set_client, database(), @@server_id)")
	if got != "42,+03:00,ANSI_QUOTES,latin1,mysql,2" {
		t.Fatalf("state on the replica: %q", got)
	}
}

// TestPins: state that cannot be replayed keeps the session on the primary.
func TestPins(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	db := openDB(t, addr, "")
	db.SetMaxIdleConns(0) // a new session each time
	for _, pin := range []string{
		"create temporary table tmp_pin (a int)",
		"select get_lock('pin', 1)",
		"select @pinned := 1",
		"select sql_calc_found_rows 1",
		"prepare s from 'select 1'",
		"lock tables mysql.user read",
	} {
		c := conn(t, db)
		if got := serverID(t, c, "select @@server_id"); got != replicaID {
			t.Fatalf("before %q: server %d", pin, got)
		}
		if _, err := c.ExecContext(context.Background(), pin); err != nil {
			t.Fatalf("%s: %v", pin, err)
		}
		if got := serverID(t, c, "select @@server_id"); got != primaryID {
			t.Errorf("after %q: server %d; want the primary", pin, got)
		}
		c.ExecContext(context.Background(), "unlock tables")
		c.Close()
	}
}

// TestNoSessionLeaksThroughThePool: a client never sees another client's variables,
// transaction, temporary tables or locks, though it gets the same backend connections; the
// same with multiplexing, where connections change hands after every statement.
func TestNoSessionLeaksThroughThePool(t *testing.T) {
	for _, multiplex := range []bool{false, true} {
		t.Run(fmt.Sprintf("multiplex=%v", multiplex), func(t *testing.T) { testNoSessionLeaks(t, multiplex) })
	}
}

func testNoSessionLeaks(t *testing.T, multiplex bool) {
	cfg := proxyConfig(t, "")
	cfg.Listeners[0].Multiplex = multiplex
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	db.SetMaxIdleConns(0)
	run(t, conn(t, db), "create table if not exists leak (id int primary key)")
	for round := range 3 {
		a := conn(t, db)
		run(t, a, "set @secret = 'a'")
		run(t, a, "create temporary table tmp_leak (x int)")
		run(t, a, "select get_lock('leak', 1)")
		run(t, a, "begin")
		run(t, a, "insert into leak values (1)")
		handed := d.Pool().Resets.Load() + d.Pool().Closed.Load()
		a.Close() // the transaction is open
		// The session hands its connections back (reset) or closes them once it sees its
		// client leave; b comes after that, as a next client would.
		testutil.WaitFor(t, "the first client's connections reset or closed", 10*time.Second, func() bool {
			return d.Pool().Resets.Load()+d.Pool().Closed.Load() > handed
		})

		b := conn(t, db)
		if got := str(t, b, "/*master*/ select @secret"); got != "" {
			t.Fatalf("round %d: another client's @secret: %q", round, got)
		}
		if _, err := b.ExecContext(context.Background(), "/*master*/ select * from tmp_leak"); err == nil {
			t.Fatalf("round %d: another client's temporary table is visible", round)
		}
		if got := str(t, b, "/*master*/ select is_free_lock('leak')"); got != "1" {
			t.Fatalf("round %d: another client's lock is held: %q", round, got)
		}
		if got := str(t, b, "/*master*/ select count(*) from leak"); got != "0" {
			t.Fatalf("round %d: another client's uncommitted row: %q", round, got)
		}
		b.Close()
	}
	if d.Pool().Reused.Load() == 0 || d.Pool().Resets.Load() == 0 {
		t.Fatalf("the pool was not used: reused %d, resets %d", d.Pool().Reused.Load(), d.Pool().Resets.Load())
	}
}

// TestReadsFallBackToThePrimary: with no usable replica, reads go to the primary (and it is
// logged); they return to the replica when it is back.
func TestReadsFallBackToThePrimary(t *testing.T) {
	dead, _ := testserver.FreePort()
	cfg := proxyConfig(t, "")
	up := cfg.Upstreams["db_read"]
	up.Cluster.Levels[0].Servers[0].Port = dead
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	db.SetMaxIdleConns(0)
	if got := serverID(t, db, "select @@server_id"); got != primaryID {
		t.Fatalf("no replica: server %d", got)
	}
	body := strings.Replace(string(mustJSON(t, cfg.Upstreams["db_read"])), `"port":`+itoa(dead), `"port":`+itoa(repl.Replica.Port), 1)
	if err := d.Reg.PutJSON("db_read", []byte(body)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "reads back on the replica", 5*time.Second, func() bool { return serverID(t, db, "select @@server_id") == replicaID })
}
