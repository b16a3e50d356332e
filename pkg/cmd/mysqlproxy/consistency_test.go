package mysqlproxy

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/mysql/session"
)

// root runs statements as root on a server.
func root(t *testing.T, m *testserver.MariaDB, stmts ...string) {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN("root"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s on %s: %v", s, m.Addr(), err)
		}
	}
}

// stopApplying stops the replica's SQL thread until the test ends: it receives the primary's
// writes but does not apply them, so a read there is stale for certain.
func stopApplying(t *testing.T) {
	t.Helper()
	root(t, repl.Replica, "STOP SLAVE SQL_THREAD")
	t.Cleanup(func() {
		root(t, repl.Replica, "START SLAVE SQL_THREAD")
		syncReplica(t)
	})
}

// consistencyConfig is proxyConfig with a consistency mode and a short GTID wait.
func consistencyConfig(t *testing.T, mode session.Mode) *config.MySQLFile {
	t.Helper()
	cfg := proxyConfig(t, "")
	cfg.MySQL.Consistency = mode
	cfg.MySQL.Window = 400 * time.Millisecond
	cfg.MySQL.GTIDWaitTimeout = 300 * time.Millisecond
	return cfg
}

// rowAndServer reads whether row id exists in rw, and which server answered.
func rowAndServer(t *testing.T, c interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id int) (found bool, server int) {
	t.Helper()
	var n int
	if err := c.QueryRowContext(context.Background(), "select count(*), @@server_id from rw where id = ?", id).Scan(&n, &server); err != nil {
		t.Fatal(err)
	}
	return n == 1, server
}

var nextRow atomic.Int64

func init() { nextRow.Store(time.Now().UnixNano() % 1000000 * 1000) }

// TestReadAfterWrite: with the replica not applying, INSERT then SELECT on one connection finds
// the row in session and window modes (the primary answers), and misses it in none mode (the
// stale replica answers: the mechanism, not luck, makes the other modes right). With
// replication running, session mode reads on the replica again, after it applied the write.
func TestReadAfterWrite(t *testing.T) {
	root(t, repl.Primary, "CREATE TABLE IF NOT EXISTS "+testserver.Database+".rw (id BIGINT PRIMARY KEY)")
	syncReplica(t)
	for _, mode := range []session.Mode{session.ModeSession, session.ModeWindow, session.ModeNone} {
		t.Run(string(mode), func(t *testing.T) {
			_, addr := startProxy(t, consistencyConfig(t, mode))
			c := conn(t, openDB(t, addr, ""))
			func() {
				stopApplying(t)
				id := int(nextRow.Add(1))
				run(t, c, "insert into rw values ("+strconv.Itoa(id)+")")
				found, server := rowAndServer(t, c, id)
				switch {
				case mode == "none" && (found || server != replicaID):
					t.Fatalf("none: found=%v on server %d; want the stale replica to miss the row", found, server)
				case mode != "none" && (!found || server != primaryID):
					t.Fatalf("%s: found=%v on server %d; want the row, from the primary", mode, found, server)
				}
			}()
			root(t, repl.Replica, "START SLAVE SQL_THREAD")
			id := int(nextRow.Add(1))
			run(t, c, "insert into rw values ("+strconv.Itoa(id)+")")
			if mode == "window" {
				time.Sleep(500 * time.Millisecond) // past the window; replication has applied it by now
			}
			found, server := rowAndServer(t, c, id)
			if !found && mode != "none" {
				t.Fatalf("%s with replication running: row missing (server %d)", mode, server)
			}
			if mode == "session" && server != replicaID {
				t.Fatalf("session with replication running: read on server %d, want the replica", server)
			}
		})
	}
}

// TestReadAfterWriteClients: the same guarantee through the mariadb client (session tracking
// negotiated) and through prepared statements; a client without session tracking never sees
// the proxy's tracking (go-sql-driver would fail to parse the OK packets otherwise).
func TestReadAfterWriteClients(t *testing.T) {
	root(t, repl.Primary, "CREATE TABLE IF NOT EXISTS "+testserver.Database+".rw (id BIGINT PRIMARY KEY)")
	syncReplica(t)
	_, addr := startProxy(t, consistencyConfig(t, "session"))
	stopApplying(t)
	id := nextRow.Add(1)
	out, err := cli(t, addr, "-e", fmt.Sprintf("insert into rw values (%d); select count(*), @@server_id from rw where id = %d", id, id), testserver.Database)
	if err != nil || out != "1\t1" {
		t.Fatalf("mariadb client: %q %v", out, err)
	}
	db := openDB(t, addr, "interpolateParams=false")
	c := conn(t, db)
	id = nextRow.Add(1)
	if _, err := c.ExecContext(context.Background(), "insert into rw values (?)", id); err != nil {
		t.Fatal(err)
	}
	if found, server := rowAndServer(t, c, int(id)); !found || server != primaryID {
		t.Fatalf("prepared: found=%v on %d", found, server)
	}
	// An UPDATE's OK carries info ("Rows matched: ...") and, on the server side, session state:
	// the client without tracking gets the info in its own form.
	res, err := c.ExecContext(context.Background(), "update rw set id = id where id = ?", id)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 0 {
		t.Fatalf("update: %d %v", n, err)
	}
}

// TestGlobalConsistency: in global mode a read on another connection sees a write made through
// the proxy; in session mode it does not have to (and with the replica stopped, does not).
func TestGlobalConsistency(t *testing.T) {
	root(t, repl.Primary, "CREATE TABLE IF NOT EXISTS "+testserver.Database+".rw (id BIGINT PRIMARY KEY)")
	syncReplica(t)
	for _, mode := range []session.Mode{session.ModeGlobal, session.ModeSession} {
		t.Run(string(mode), func(t *testing.T) {
			_, addr := startProxy(t, consistencyConfig(t, mode))
			db := openDB(t, addr, "")
			writer, reader := conn(t, db), conn(t, db)
			stopApplying(t)
			id := int(nextRow.Add(1))
			run(t, writer, "insert into rw values ("+strconv.Itoa(id)+")")
			found, server := rowAndServer(t, reader, id)
			if mode == "global" && (!found || server != primaryID) {
				t.Fatalf("global: another connection found=%v on %d", found, server)
			}
			if mode == "session" && (found || server != replicaID) {
				t.Fatalf("session: another connection found=%v on %d; want the replica's stale view", found, server)
			}
		})
	}
}

// TestReplicaLagAndRole: a replica delayed by MASTER_DELAY=3 under steady writes is lagging in
// status beyond max_replication_lag and gets no reads (the primary serves them); after the
// writes stop it catches up and reads return to it. A replica made writable is flagged.
func TestReplicaLagAndRole(t *testing.T) {
	root(t, repl.Primary, "CREATE TABLE IF NOT EXISTS "+testserver.Database+".lag (id BIGINT AUTO_INCREMENT PRIMARY KEY)")
	syncReplica(t)
	cfg := proxyConfig(t, "")
	cfg.MySQL.Consistency = "none"
	cfg.Upstreams["db_read"].MaxReplicationLag = 1
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	readServer := func() int { return serverID(t, db, "select @@server_id") }
	status := func() checkups.ServerStatus {
		for _, ls := range d.Reg.Status("")["cls:db_read"].([][]checkups.ServerStatus) {
			return ls[0]
		}
		return checkups.ServerStatus{}
	}
	testutil.WaitFor(t, "replica ok", 5*time.Second, func() bool { return status().Status == checkups.StatusOK })
	if readServer() != replicaID {
		t.Fatal("reads are not on the replica before the delay")
	}

	root(t, repl.Replica, "STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=3", "START SLAVE")
	t.Cleanup(func() {
		root(t, repl.Replica, "STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=0", "START SLAVE")
		syncReplica(t)
	})
	ctx, stop := context.WithCancel(context.Background())
	writes := make(chan struct{})
	go func() {
		defer close(writes)
		w := openDB(t, repl.Primary.Addr(), "")
		for ctx.Err() == nil {
			w.Exec("insert into lag () values ()")
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// While the replica restarts replication a heartbeat may find its threads stopped, which is
	// lagging too: wait for lagging for the delay.
	var st checkups.ServerStatus
	testutil.WaitFor(t, "replica lagging beyond max_replication_lag", 20*time.Second, func() bool {
		st = status()
		return st.Status == checkups.StatusLagging && st.Msg != nil && strings.Contains(*st.Msg, "max_replication_lag 1s")
	})
	if st.Replication["lag"] == nil {
		t.Fatalf("lagging status without the lag: %+v", st)
	}
	if got := readServer(); got != primaryID {
		t.Fatalf("a read went to server %d while the replica lags", got)
	}
	out, err := exec.Command(buildCtl(t), "--addr", d.AdminAddr(), "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lagging") {
		t.Fatalf("slardarctl status: %v\n%s", err, out)
	}
	stop()
	<-writes
	testutil.WaitFor(t, "replica caught up", 20*time.Second, func() bool { return status().Status == checkups.StatusOK })
	if got := readServer(); got != replicaID {
		t.Fatalf("reads did not return to the replica: server %d", got)
	}

	// A writable replica is flagged, and stays usable.
	root(t, repl.Replica, "SET GLOBAL read_only=0")
	t.Cleanup(func() { root(t, repl.Replica, "SET GLOBAL read_only=1") })
	testutil.WaitFor(t, "writable replica flagged", 5*time.Second, func() bool {
		st := status()
		return st.Status == checkups.StatusOK && st.Msg != nil && strings.Contains(*st.Msg, "read_only is OFF")
	})
}

// TestReplicaKilledUnderLoad: sysbench oltp_read_only (autocommit reads, 8 threads) through the
// proxy over a replication pair of its own; the replica is killed mid-run. The run finishes,
// and the only errors allowed are statements whose result had started on the dead server (at
// most one per thread). Restarted, the replica serves reads again within a heartbeat or two.
func TestReplicaKilledUnderLoad(t *testing.T) {
	ctx := context.Background()
	pair, err := testserver.StartReplication(ctx, t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pair.Stop)
	port, _ := testserver.FreePort()
	y := fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
checkups: {interval: 200ms}
listeners: [{listen: "127.0.0.1:%d", upstream: db}]
users: [{name: %[2]s, password: %[3]s}]
upstreams:
  db: {typ: mysql, user: %[2]s, pass: %[3]s, timeout: 1, servers: [{host: 127.0.0.1, port: %[4]d}]}
  db_read: {typ: mysql, user: %[2]s, pass: %[3]s, timeout: 1, servers: [{host: 127.0.0.1, port: %[5]d}]}
`, port, testserver.User, testserver.Password, pair.Primary.Port, pair.Replica.Port)
	cfg, err := config.ParseMySQL([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startProxy(t, cfg)
	host, p, _ := net.SplitHostPort(addr)
	args := []string{"oltp_read_only", "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + p,
		"--mysql-user=" + testserver.User, "--mysql-password=" + testserver.Password, "--mysql-db=" + testserver.Database,
		"--tables=1", "--table-size=2000", "--skip_trx=on"}
	if out, err := exec.Command("sysbench", append(args, "prepare")...).CombinedOutput(); err != nil {
		t.Fatalf("sysbench prepare: %v\n%s", err, out)
	}
	if err := pair.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(2 * time.Second)
		pair.Replica.Kill()
	}()
	out, err := exec.Command("sysbench", append(args, "run", "--threads=8", "--time=6", "--report-interval=0", "--mysql-ignore-errors=all")...).CombinedOutput()
	if err != nil {
		t.Fatalf("sysbench run did not finish: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`ignored errors:\s+(\d+)`).FindStringSubmatch(string(out))
	q := regexp.MustCompile(`read:\s+(\d+)`).FindStringSubmatch(string(out))
	if m == nil || q == nil {
		t.Fatalf("sysbench output:\n%s", out)
	}
	errs, _ := strconv.Atoi(m[1])
	reads, _ := strconv.Atoi(q[1])
	t.Logf("replica killed 2 s into 6 s of oltp_read_only, 8 threads: %d reads, %d errors", reads, errs)
	if errs > 8 || reads == 0 {
		t.Fatalf("%d errors (at most one per thread is owed), %d reads\n%s", errs, reads, out)
	}

	if err := pair.Replica.Start(ctx); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, addr, "")
	testutil.WaitFor(t, "reads back on the restarted replica", 3*time.Second, func() bool {
		return serverID(t, db, "select @@server_id") == replicaID
	})
}
