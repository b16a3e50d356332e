package mysqlproxy

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
)

// TestUseInMultiStatementDoesNotLeak: a USE inside a multi-statement is reported by the server;
// the connection goes back to the pool filed under that schema, and the next client starts in
// its own.
func TestUseInMultiStatementDoesNotLeak(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	db := openDB(t, addr, "multiStatements=true")
	db.SetMaxIdleConns(0)
	a := conn(t, db)
	run(t, a, "SELECT 1; USE mysql")
	if got := str(t, a, "SELECT DATABASE()"); got != "mysql" {
		t.Fatalf("the session's own schema after USE: %q", got)
	}
	a.Close()
	b := conn(t, db)
	if got := str(t, b, "/*master*/ SELECT DATABASE()"); got != testserver.Database {
		t.Fatalf("the next client starts in %q; want %q", got, testserver.Database)
	}
	if got := str(t, b, "SELECT DATABASE()"); got != testserver.Database {
		t.Fatalf("the next client reads in %q; want %q", got, testserver.Database)
	}
	run(t, b, "USE mysql")
	b.Close()
	c := conn(t, db)
	if got := str(t, c, "/*master*/ SELECT DATABASE()"); got != testserver.Database {
		t.Fatalf("after a pooled connection was used in mysql, the next client starts in %q", got)
	}
}

// TestPreparedSetReachesTheReplica: a SET run as a prepared statement is reported by the server
// and replayed on the replica connection before the next read.
func TestPreparedSetReachesTheReplica(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c := conn(t, openDB(t, addr, ""))
	if _, err := c.ExecContext(context.Background(), "SET character_set_results = ?", "latin1"); err != nil {
		t.Fatal(err)
	}
	if got := str(t, c, "SELECT CONCAT(@@character_set_results, ',', @@server_id)"); got != "latin1,"+strconv.Itoa(replicaID) {
		t.Fatalf("a read after a prepared SET: %q", got)
	}
	run(t, c, "SET NAMES latin1 COLLATE latin1_bin, time_zone = '+02:00', @s = 'x'")
	if got := str(t, c, "SELECT CONCAT_WS(',', @@collation_connection, @@time_zone, @s, @@server_id)"); got != "latin1_bin,+02:00,x,2" {
		t.Fatalf("a read after SET NAMES ... COLLATE: %q", got)
	}
}

// TestRoleDoesNotLeak: SET ROLE survives COM_RESET_CONNECTION on MariaDB 10.11; the connection
// of a session that changed its role is closed, not handed to the next client.
func TestRoleDoesNotLeak(t *testing.T) {
	root(t, repl.Primary,
		"CREATE TABLE IF NOT EXISTS "+testserver.Database+".secret (a INT)",
		"CREATE ROLE IF NOT EXISTS secret_reader",
		"GRANT SELECT ON "+testserver.Database+".secret TO secret_reader",
		"CREATE USER IF NOT EXISTS 'limited'@'%' IDENTIFIED BY 'limited-secret'",
		"GRANT secret_reader TO 'limited'@'%'",
	)
	syncReplica(t)
	cfg := proxyConfig(t, "")
	cfg.Users = append(cfg.Users, mustUsers(t, "\n  - {name: limited, password: limited-secret}")...)
	d, addr := startProxy(t, cfg)
	dsn := fmt.Sprintf("limited:limited-secret@tcp(%s)/?timeout=5s", addr)
	db := openDSN(t, dsn)
	db.SetMaxIdleConns(0)
	for round := range 3 {
		a := conn(t, db)
		run(t, a, "SET ROLE secret_reader")
		if got := str(t, a, "/*master*/ SELECT COUNT(*) FROM "+testserver.Database+".secret"); got != "0" {
			t.Fatalf("the role's privilege: %q", got)
		}
		a.Close()
		b := conn(t, db)
		if got := str(t, b, "/*master*/ SELECT IFNULL(CURRENT_ROLE(), 'none')"); got != "none" {
			t.Fatalf("round %d: the next client has role %q", round, got)
		}
		if _, err := b.ExecContext(context.Background(), "/*master*/ SELECT COUNT(*) FROM "+testserver.Database+".secret"); err == nil {
			t.Fatalf("round %d: the next client has the role's privilege", round)
		}
		b.Close()
	}
	if d.Pool().Opened.Load() < 3 {
		t.Fatalf("only %d backend logins: a connection that had a role was reused", d.Pool().Opened.Load())
	}
}

// TestRefusedOptionIsNotRecorded: COM_SET_OPTION with an option the server refuses gets the
// server's error, and the session goes on as before.
func TestRefusedOptionIsNotRecorded(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	for _, target := range []string{repl.Primary.Addr(), addr} {
		c := gmConnect(t, target)
		if p := raw(t, c, mysql.COM_SET_OPTION, []byte{5, 0}); p[0] != 0xff {
			t.Fatalf("%s: COM_SET_OPTION 5 answered %x", target, p)
		}
		if _, err := c.Execute("SELECT 1"); err != nil {
			t.Fatalf("%s: after a refused option: %v", target, err)
		}
		if p := raw(t, c, mysql.COM_SET_OPTION, []byte{1, 0}); p[0] != 0xfe && p[0] != 0 {
			t.Fatalf("%s: COM_SET_OPTION off answered %x", target, p)
		}
		if _, err := c.Execute("SELECT 1; SELECT 2"); err == nil {
			t.Fatalf("%s: a multi-statement ran with multi-statements off", target)
		}
	}
}

// TestReplayIsBounded: the session keeps the last value of each variable and a replica
// connection gets them in one statement, however many SETs came before.
func TestReplayIsBounded(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c := conn(t, openDB(t, addr, ""))
	sets := func() int {
		n, _ := strconv.Atoi(str(t, c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'COM_SET_OPTION'"))
		return n
	}
	before := sets() // on the replica
	for i := range 2000 {
		run(t, c, fmt.Sprintf("SET @v%d = %d", i%10, i))
	}
	after := sets()
	if got := str(t, c, "SELECT CONCAT(@v3, ',', @v9, ',', @@server_id)"); got != "1993,1999,2" {
		t.Fatalf("the replica's variables: %q", got)
	}
	if after-before != 1 {
		t.Fatalf("the replica ran %d SET statements for 2000 on the primary; want 1", after-before)
	}
}
