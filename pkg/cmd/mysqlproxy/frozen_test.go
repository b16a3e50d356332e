package mysqlproxy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
)

// inFlight waits until the server runs a statement that starts with prefix.
func inFlight(t *testing.T, primary bool, prefix string) {
	t.Helper()
	m := repl.Replica
	if primary {
		m = repl.Primary
	}
	testutil.WaitFor(t, "the statement running on the server", 10*time.Second, func() bool {
		return rootQuery(t, m, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '"+prefix+"%'") != "0"
	})
}

// TestFrozenReplica: a replica that stops answering (SIGSTOP) fails its health checks and
// leaves the read rotation (a lone replica is not kept "protected": the primary serves its
// reads); a read that was waiting on it ends and runs again on the primary (it ran on a
// read-only session: nothing ran twice); when it thaws, reads return to it.
func TestFrozenReplica(t *testing.T) {
	cfg := proxyConfig(t, "")
	cfg.Upstreams["db_read"].Timeout = 1
	d, addr := startProxy(t, cfg)
	c := conn(t, openDB(t, addr, ""))
	if got := serverID(t, c, "SELECT @@server_id"); got != replicaID {
		t.Fatalf("before: server %d", got)
	}
	type result struct {
		id  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = c.QueryRowContext(context.Background(), "SELECT SLEEP(2) + @@server_id").Scan(&r.id)
		done <- r
	}()
	inFlight(t, false, "SELECT SLEEP(2)")
	if err := repl.Replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repl.Replica.Thaw() })
	select {
	case r := <-done:
		if r.err != nil || r.id != primaryID {
			t.Fatalf("the read in flight on the frozen replica: server %d, %v; want it run again on the primary", r.id, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read on a frozen replica hangs")
	}
	if got := serverID(t, c, "SELECT @@server_id"); got != primaryID {
		t.Fatalf("a read while the replica is frozen: server %d", got)
	}
	if st := d.Reg.Status("")["cls:db_read"]; !strings.Contains(fmtStatus(st), "err") {
		t.Fatalf("the frozen replica's status: %s", fmtStatus(st))
	}
	repl.Replica.Thaw()
	testutil.WaitFor(t, "reads back on the thawed replica", 20*time.Second, func() bool {
		return serverID(t, c, "SELECT @@server_id") == replicaID
	})
}

// TestReadTimeout: a statement on a server that stops answering and that nothing replaces (a
// lone primary, kept usable) ends after mysql.read_timeout with a clear error, not never.
func TestReadTimeout(t *testing.T) {
	cfg := proxyConfig(t, "")
	cfg.MySQL.ReadTimeout = 2 * time.Second
	_, addr := startProxy(t, cfg)
	c := conn(t, openDB(t, addr, ""))
	run(t, c, "/*master*/ SELECT 1")
	errs := make(chan error, 1)
	go func() {
		_, err := c.ExecContext(context.Background(), "/*master*/ SELECT SLEEP(1)")
		errs <- err
	}()
	inFlight(t, true, "/*master*/ SELECT SLEEP(1)")
	if err := repl.Primary.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer repl.Primary.Thaw()
	select {
	case err := <-errs:
		if err == nil || !strings.Contains(err.Error(), "read_timeout") {
			t.Fatalf("a statement on a frozen primary: %v; want the read timeout's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a statement on a frozen primary hangs past the read timeout")
	}
}

// fmtStatus prints a status value for a message.
func fmtStatus(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
