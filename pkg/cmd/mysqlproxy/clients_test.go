package mysqlproxy

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// TestSysbench: sysbench oltp_read_write with its default server-side prepared statements, 8
// threads, through the proxy: no error it does not tolerate (it would abort). Deadlocks, which
// it retries and which MariaDB reports with the same load directly, are bounded.
func TestSysbench(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"oltp_read_write", "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + testserver.User, "--mysql-password=" + testserver.Password, "--mysql-db=" + testserver.Database,
		"--tables=2", "--table-size=10000"}
	for _, step := range [][]string{{"cleanup"}, {"prepare"}, {"run", "--threads=8", "--time=4", "--report-interval=0"}} {
		out, err := exec.Command("sysbench", append(args, step...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sysbench %s: %v\n%s", step[0], err, out)
		}
		if step[0] == "run" {
			m := regexp.MustCompile(`ignored errors:\s+(\d+)`).FindStringSubmatch(string(out))
			tx := regexp.MustCompile(`transactions:\s+(\d+)`).FindStringSubmatch(string(out))
			if m == nil || tx == nil {
				t.Fatalf("sysbench run output:\n%s", out)
			}
			deadlocks, _ := strconv.Atoi(m[1])
			txs, _ := strconv.Atoi(tx[1])
			if txs == 0 || deadlocks*20 > txs {
				t.Fatalf("sysbench run: %d transactions, %d deadlocks retried\n%s", txs, deadlocks, out)
			}
			t.Logf("sysbench oltp_read_write, 8 threads, 4 s: %d transactions, %d deadlocks retried", txs, deadlocks)
		}
	}
}

// TestDrain: on shutdown an idle session ends at once, a session in a transaction finishes it
// (its COMMIT works) and then ends, within the grace period.
func TestDrain(t *testing.T) {
	d, addr := startProxy(t, proxyConfig(t, ""))
	db := openDB(t, addr, "")
	idle, busy := conn(t, db), conn(t, db)
	run(t, idle, "select 1")
	run(t, busy, "create table if not exists drained (id int primary key)")
	run(t, busy, "delete from drained")
	run(t, busy, "begin")
	run(t, busy, "insert into drained values (1)")
	done := make(chan struct{})
	go func() { d.Shutdown(context.Background()); close(done) }()
	time.Sleep(300 * time.Millisecond)
	if _, err := idle.ExecContext(context.Background(), "select 1"); err == nil {
		t.Fatal("an idle session was not closed by the drain")
	}
	run(t, busy, "insert into drained values (2)")
	run(t, busy, "commit")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not end after the transaction")
	}
	direct := openDB(t, repl.Primary.Addr(), "")
	var n int
	if err := direct.QueryRow("select count(*) from drained").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows committed during the drain: %d %v", n, err)
	}
}

// TestIdleTimeout: a client silent for mysql.idle_timeout is closed; one that keeps talking,
// for longer than that in all, is not (the deadline moves with every command).
func TestIdleTimeout(t *testing.T) {
	cfg := proxyConfig(t, "")
	cfg.MySQL.IdleTimeout = 1500 * time.Millisecond
	_, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	busy, silent := conn(t, db), conn(t, db)
	run(t, silent, "select 1")
	for range 8 {
		run(t, busy, "select 1")
		time.Sleep(300 * time.Millisecond)
	}
	if _, err := silent.ExecContext(context.Background(), "select 1"); err == nil {
		t.Fatal("a client silent for longer than idle_timeout is still connected")
	}
}

// TestAccessLogAndLuaHooks: one access-log line per session with what it did; a preread hook
// on a mysql-proxy port refuses connections as on slardar-proxy.
func TestAccessLogAndLuaHooks(t *testing.T) {
	var logs testutil.SyncBuffer
	cfg := proxyConfig(t, "")
	d, addr := startProxyLog(t, cfg, &logs)
	if out, err := cli(t, addr, "--comments", "-e", "select 1; select 2; /*master*/ select 3; create table if not exists logged (id int)", testserver.Database); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	testutil.WaitFor(t, "the access line", 5*time.Second, func() bool { return strings.Contains(logs.String(), "msg=conn") })
	line := logs.String()
	for _, want := range []string{"user=runner", "schema=upyun", "queries=4", "reads=2", "primary_reads=1", "writes=1", "outcome=ok", "backends=127.0.0.1:"} {
		if !strings.Contains(line, want) {
			t.Errorf("access line lacks %s:\n%s", want, line)
		}
	}
	if strings.Contains(line, "status=200") {
		t.Errorf("a MySQL access line with nginx stream's status=200:\n%s", line)
	}
	_, port, _ := net.SplitHostPort(addr)
	if err := d.Scripts.Code.Load("script.preread"+port, []byte(`ngx.exit(1)`)); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, addr, "-e", "select 1"); err == nil {
		t.Fatalf("a preread ngx.exit(1) let the client in: %s", out)
	}
	d.Scripts.Code.Delete("script.preread" + port)
	if out, err := cli(t, addr, "-e", "select 1"); err != nil || out != "1" {
		t.Fatalf("after deleting the preread script: %q %v", out, err)
	}
}
