package mysqlproxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/config"

	driver "github.com/go-sql-driver/mysql"
)

// ownServer starts a MariaDB of the test's own with more options, stopped at its end.
func ownServer(t *testing.T, args ...string) *testserver.MariaDB {
	t.Helper()
	m, err := testserver.StartMariaDB(context.Background(), t.TempDir(), 0, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	return m
}

// singleConfig is a mysql-proxy whose listener "db" has only server m (no replica).
func singleConfig(t *testing.T, m *testserver.MariaDB, upstreamExtra string) *config.MySQLFile {
	t.Helper()
	port, _ := testserver.FreePort()
	y := fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
checkups: {interval: 200ms}
listeners: [{listen: "127.0.0.1:%d", upstream: db}]
users: [{name: %s, password: %s, schema: %s}]
upstreams:
  db: {typ: mysql, user: %s, pass: %s, name: %s, timeout: 2, %s servers: [{host: 127.0.0.1, port: %d}]}
`, port, testserver.User, testserver.Password, testserver.Database, testserver.User, testserver.Password, testserver.Database, upstreamExtra, m.Port)
	cfg, err := config.ParseMySQL([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPoolWithinTheServersLimit: with max_connections=12, 30 client sessions each in a
// transaction all get through (the proxy stays under the server's limit and makes the rest
// wait, never a 1040 from its own logins); idle connections of other users make room; and a
// session that waits longer than wait_timeout gets an error that names the limit.
func TestPoolWithinTheServersLimit(t *testing.T) {
	m := ownServer(t, "--max-connections=12")
	cfg := singleConfig(t, m, "")
	cfg.MySQL.Pool.WaitTimeout = 20 * time.Second
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	db.SetMaxOpenConns(30)
	run(t, conn(t, db), "CREATE TABLE IF NOT EXISTS pooled (id INT)")
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := db.Begin()
			if err != nil {
				errs <- err
				return
			}
			if _, err := tx.Exec("INSERT INTO pooled VALUES (?)", i); err != nil {
				errs <- err
			}
			time.Sleep(50 * time.Millisecond)
			errs <- tx.Commit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a session at the server's limit: %v", err)
		}
	}
	st := d.Pool().Stats()[m.Addr()]
	if st.Limit != 10 || st.Open > 10 || st.Waits == 0 {
		t.Fatalf("pool at a server with max_connections=12: %+v (want a limit of 10, no more open, some waits)", st)
	}
	if got := fmtStatus(d.Reg.Status("")["cls:db"]); !strings.Contains(got, `"limit":10`) || !strings.Contains(got, `"pool":{`) {
		t.Fatalf("GET upstream status lacks the pool: %s", got)
	}

	// At the limit with nothing to wait for: the error names the limit, not 1040 from the server,
	// after wait_timeout even where that is longer than the upstream's timeout (once cut short
	// by it, as "did not answer in time"), and the wait is not the server's failure.
	cfg2 := singleConfig(t, m, "")
	cfg2.Upstreams["db"].Cluster.Levels[0].Servers[0].MaxConns = 2
	cfg2.Upstreams["db"].Timeout = 1
	cfg2.MySQL.Pool.WaitTimeout = 2500 * time.Millisecond
	d2, addr2 := startProxy(t, cfg2)
	db2 := openDB(t, addr2, "")
	for range 2 {
		tx, err := db2.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
	}
	start := time.Now()
	_, err := db2.Begin()
	if err == nil || !strings.Contains(err.Error(), "Error 1040") || !strings.Contains(err.Error(), "all 2 connections mysql-proxy may open") {
		t.Fatalf("a third session at max_conns 2: %v after %v", err, time.Since(start))
	}
	if waited := time.Since(start); waited < 2*time.Second {
		t.Fatalf("the third session waited %v, not wait_timeout (2.5s)", waited)
	}
	if got := fmtStatus(d2.Reg.Status("")["cls:db"]); !strings.Contains(got, `"passive":"ok"`) || !strings.Contains(got, `"passive_fails":0`) {
		t.Fatalf("a wait at the proxy's own limit counted against the server: %s", got)
	}
}

// TestIdleConnectionsAreTrimmed: idle connections beyond the pool's share are closed, and so
// are those idle longer than the idle timeout.
func TestIdleConnectionsAreTrimmed(t *testing.T) {
	m := ownServer(t)
	cfg := singleConfig(t, m, "")
	cfg.MySQL.Pool.MaxIdle = new(3)
	cfg.MySQL.Pool.IdleTimeout = time.Second
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	var conns []*sql.Conn
	for range 8 {
		c := conn(t, db)
		run(t, c, "SELECT 1")
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	db.SetMaxIdleConns(0)
	testutil.WaitFor(t, "at most 3 idle connections", 5*time.Second, func() bool { return d.Pool().Idle() <= 3 })
	testutil.WaitFor(t, "idle connections closed after the idle timeout", 10*time.Second, func() bool {
		return d.Pool().Idle() == 0 && rootQuery(t, m, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'runner'") == "0"
	})
}

// TestNoIdleConnections: with max_idle 0 a session's server connection closes when its client
// leaves, so the server sees the client's thread end, as it would directly.
func TestNoIdleConnections(t *testing.T) {
	m := ownServer(t)
	cfg := singleConfig(t, m, "")
	cfg.MySQL.Pool.MaxIdle = new(0)
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	c := conn(t, db)
	id := str(t, c, "SELECT CONNECTION_ID()")
	if got := rootQuery(t, m, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = "+id); got != "1" {
		t.Fatalf("the session's thread %s in the server's processlist: %s", id, got)
	}
	c.Close()
	db.Close()
	testutil.WaitFor(t, "the thread gone with its client", 5*time.Second, func() bool {
		return rootQuery(t, m, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = "+id) == "0"
	})
	if n := d.Pool().Idle(); n != 0 {
		t.Fatalf("%d idle connections with max_idle 0", n)
	}
}

// TestPooledIsAsGoodAsAFreshLogin: a client that gets a pooled connection sees what a fresh
// login would: the schema's character set as it is now, globals as they are now.
func TestPooledIsAsGoodAsAFreshLogin(t *testing.T) {
	m := ownServer(t)
	d, addr := startProxy(t, singleConfig(t, m, ""))
	db := openDB(t, addr, "")
	db.SetMaxIdleConns(0)
	c := conn(t, db)
	run(t, c, "SELECT 1")
	c.Close()
	// The session hands its server connection back once it sees its client leave.
	testutil.WaitFor(t, "the first session's connection back in the pool", 10*time.Second, func() bool { return d.Pool().Idle() > 0 })
	root(t, m, "ALTER DATABASE "+testserver.Database+" CHARACTER SET latin1", "SET GLOBAL max_allowed_packet = 33554432")
	t.Cleanup(func() {
		root(t, m, "ALTER DATABASE "+testserver.Database+" CHARACTER SET utf8mb4", "SET GLOBAL max_allowed_packet = 16777216")
	})
	reused := d.Pool().Reused.Load()
	c = conn(t, db)
	if got := str(t, c, "SELECT CONCAT(@@character_set_database, ',', @@max_allowed_packet)"); got != "latin1,33554432" {
		t.Fatalf("a pooled connection after ALTER DATABASE and SET GLOBAL: %q", got)
	}
	if d.Pool().Reused.Load() == reused {
		t.Fatal("the connection did not come from the pool: the test proves nothing")
	}
}

// TestLoginToAUCS2Schema: a default schema whose character set is ucs2 (the server's OK after
// the login carries session tracking of it) logs in.
func TestLoginToAUCS2Schema(t *testing.T) {
	root(t, repl.Primary, "CREATE DATABASE IF NOT EXISTS wide CHARACTER SET ucs2", "CREATE DATABASE IF NOT EXISTS wider CHARACTER SET utf32")
	syncReplica(t)
	_, addr := startProxy(t, proxyConfig(t, ""))
	for _, schema := range []string{"wide", "wider"} {
		out, err := cli(t, addr, "-e", "SELECT @@character_set_database", schema)
		if err != nil || (out != "ucs2" && out != "utf32") {
			t.Fatalf("login to %s: %q %v", schema, out, err)
		}
	}
}

// TestTLSToTheServer: with tls.mode required, sessions and health checks reach a server that
// requires secure transport over TLS (its session shows a cipher), the certificate verified
// against the CA; a CA that did not sign it is refused.
func TestTLSToTheServer(t *testing.T) {
	certs, err := testserver.MakeCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := ownServer(t, "--ssl-ca="+certs.CA, "--ssl-cert="+certs.Cert, "--ssl-key="+certs.Key)
	root(t, m, "SET GLOBAL require_secure_transport = ON")
	d, addr := startProxy(t, singleConfig(t, m, fmt.Sprintf("tls: {mode: required, ca: %q},", certs.CA)))
	c := conn(t, openDB(t, addr, ""))
	var name, cipher string
	if err := c.QueryRowContext(context.Background(), "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Fatalf("Ssl_cipher through the proxy: %q %v", cipher, err)
	}
	testutil.WaitFor(t, "the heartbeat over TLS", 5*time.Second, func() bool {
		return strings.Contains(fmtStatus(d.Reg.Status("")["cls:db"]), `"status":"ok"`)
	})
	other, _ := testserver.MakeCerts(t.TempDir())
	_, addr2 := startProxy(t, singleConfig(t, m, fmt.Sprintf("tls: {mode: required, ca: %q},", other.CA)))
	if _, err := conn(t, openDB(t, addr2, "")).ExecContext(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("a server certificate another CA signed was accepted")
	}
}

// TestClientAttributesReachTheServer: performance_schema.session_connect_attrs shows the
// client's own attributes, and the proxy's with the client's address.
func TestClientAttributesReachTheServer(t *testing.T) {
	m := ownServer(t, "--performance-schema=ON")
	_, addr := startProxy(t, singleConfig(t, m, ""))
	db := openDB(t, addr, "connectionAttributes=app:billing")
	db.SetMaxIdleConns(0)
	for range 2 { // a new login, then a pooled connection logged in again
		c := conn(t, db)
		got := str(t, c, "SELECT GROUP_CONCAT(CONCAT(ATTR_NAME, '=', ATTR_VALUE) ORDER BY ATTR_NAME) FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID()")
		for _, want := range []string{"app=billing", "_client_name=Go-MySQL-Driver", "_proxy=slardar mysql-proxy", "_proxy_client_addr=127.0.0.1:"} {
			if !strings.Contains(got, want) {
				t.Fatalf("the server sees %q; want %q among them (connection id %s, threads %s)", got, want,
					str(t, c, "SELECT CONNECTION_ID()"), rootQuery(t, m, "SELECT GROUP_CONCAT(ID, ':', COMMAND) FROM information_schema.PROCESSLIST WHERE USER = 'runner'"))
			}
		}
		c.Close()
	}
}

// TestStaleServerConnections: the client's wait_timeout is its idle limit at the proxy (the
// connection closes as the server's would, so the driver's check sees it); a session whose
// server connection is killed while idle moves to another when its state can move, and is
// closed at once when it cannot (a temporary table).
func TestStaleServerConnections(t *testing.T) {
	m := ownServer(t)
	_, addr := startProxy(t, singleConfig(t, m, ""))
	killIdle := func() {
		t.Helper()
		db, err := sql.Open("mysql", m.DSN("root"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, id := range strings.Split(rootQuery(t, m, "SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST WHERE USER = 'runner' AND COMMAND = 'Sleep'"), ",") {
			// A thread that ended since it was listed (the pool closing an idle connection, a
			// wait_timeout) is gone as wanted: 1094 Unknown thread id is not a failure.
			var me *driver.MySQLError
			if _, err := db.Exec("KILL " + id); id != "" && err != nil && !(errors.As(err, &me) && me.Number == 1094) {
				t.Fatalf("KILL %s on %s: %v", id, m.Addr(), err)
			}
		}
	}

	c, _ := rawLogin(t, addr, testserver.User, testserver.Password, testserver.Database)
	rawCommand(t, c, append([]byte{3}, "SET @@SESSION.wait_timeout = 1"...))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadPayload(1 << 16); err == nil {
		t.Fatal("the client's connection is open after its wait_timeout")
	}

	db := openDB(t, addr, "")
	db.SetMaxIdleConns(0)
	movable := conn(t, db)
	run(t, movable, "SET @kept = 'yes'")
	killIdle()
	time.Sleep(deadCheck) // a held connection is checked once it has been unused this long
	if got := str(t, movable, "SELECT @kept"); got != "yes" {
		t.Fatalf("after its server connection was killed, a session with only variables: %q", got)
	}

	pinned, _ := rawLogin(t, addr, testserver.User, testserver.Password, testserver.Database)
	rawCommand(t, pinned, append([]byte{3}, "CREATE TEMPORARY TABLE tmp_stale (a INT)"...))
	// The session's own server thread (not the id the proxy announced): killed whatever it is
	// doing at the moment, not only if found asleep.
	thread := rawQuery(t, pinned, "SELECT @@pseudo_thread_id")
	if len(thread) != 1 || len(thread[0]) < 2 {
		t.Fatalf("the pinned session's thread: %q", thread)
	}
	closed := make(chan error, 1)
	go func() {
		pinned.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _, err := pinned.ReadPayload(1 << 16)
		closed <- err
	}()
	root(t, m, "KILL "+string(thread[0][1:]))
	if err := <-closed; err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a session with a temporary table whose server connection was killed: %v; want its connection closed at once", err)
	}
}

// deadCheck is a little more than how long a held server connection stays unused before the
// session checks it is still there (session.deadCheckAfter).
const deadCheck = 1200 * time.Millisecond
