package mysqlproxy

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// exchange sends raw packets (payload with its sequence number) and returns the first response
// packet ("" when the connection closed instead; an auth switch is answered with password) and
// whether the connection still serves a query afterwards.
func exchange(t *testing.T, c *wire.Conn, password string, packets ...[]byte) (first string, alive bool) {
	t.Helper()
	for _, p := range packets {
		c.WritePayload(p[0], p[1:])
	}
	c.W.Flush()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, seq, err := c.ReadPayload(1 << 24)
	if err != nil {
		return "", false
	}
	if p[0] == 0xfe && len(p) > 1 && password != "" { // an auth switch: answer with the new scramble
		plugin, salt, _ := strings.Cut(string(p[1:]), "\x00")
		if plugin == "mysql_native_password" {
			c.WritePayload(seq+1, gomysql.CalcNativePassword([]byte(strings.TrimSuffix(salt, "\x00")), []byte(password)))
			c.W.Flush()
			if p, _, err = c.ReadPayload(1 << 24); err != nil {
				return "", false
			}
		}
	}
	first = fmt.Sprintf("%x", p[:min(len(p), 1)])
	if p[0] == 0xff {
		first = fmt.Sprint(binary.LittleEndian.Uint16(p[1:]))
	}
	// drain the rest of the response, then try a query
	for c.R.Buffered() > 0 {
		if _, _, err := c.ReadPayload(1 << 24); err != nil {
			break
		}
	}
	c.WritePayload(0, append([]byte{gomysql.COM_QUERY}, "SELECT 1"...))
	c.W.Flush()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	q, _, err := c.ReadPayload(1 << 24)
	return first, err == nil && q[0] == 1
}

// TestProtocolEdges: commands a client gets wrong are answered as the server answers them,
// and the connection lives on (or ends) as it does on the server.
func TestProtocolEdges(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	changeUser := func(user, password string, salt []byte) []byte {
		auth := gomysql.CalcNativePassword(salt, []byte(password))
		p := append([]byte{0, gomysql.COM_CHANGE_USER}, user...)
		p = append(append(p, 0, byte(len(auth))), auth...)
		p = append(append(p, testserver.Database...), 0)
		p = binary.LittleEndian.AppendUint16(p, 45)
		return append(p, "mysql_native_password\x00"...)
	}
	tests := []struct {
		name     string
		password string // for an auth switch
		packets  func(salt []byte) [][]byte
	}{
		{"an empty command", "", func([]byte) [][]byte { return [][]byte{{0}} }},
		{"a command with sequence 3", "", func([]byte) [][]byte { return [][]byte{append([]byte{3, gomysql.COM_QUERY}, "SELECT 1"...)} }},
		{"COM_FIELD_LIST without its NUL", "", func([]byte) [][]byte { return [][]byte{append([]byte{0, gomysql.COM_FIELD_LIST}, "user"...)} }},
		{"a refused COM_CHANGE_USER", "wrong", func(salt []byte) [][]byte { return [][]byte{changeUser(testserver.User, "wrong", salt)} }},
		{"a COM_CHANGE_USER", testserver.Password, func(salt []byte) [][]byte { return [][]byte{changeUser(testserver.User, testserver.Password, salt)} }},
		{"an unknown command", "", func([]byte) [][]byte { return [][]byte{{0, 0x7f}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]string
			for i, target := range []string{repl.Primary.Addr(), addr} {
				c, salt := rawLogin(t, target, testserver.User, testserver.Password, "mysql")
				first, alive := exchange(t, c, tt.password, tt.packets(salt)...)
				got[i] = fmt.Sprintf("answer %s, alive %v", first, alive)
			}
			if got[0] != got[1] {
				t.Fatalf("the server: %s; the proxy: %s", got[0], got[1])
			}
			t.Log(got[0])
		})
	}
}

// TestBackendLoginFailureHidesAddresses: a client whose backend login fails learns why, but
// not where the servers are.
func TestBackendLoginFailureHidesAddresses(t *testing.T) {
	cfg := proxyConfig(t, "")
	cfg.Users = append(cfg.Users, mustUsers(t, "\n  - {name: broken, password: x, backend_user: runner, backend_password: wrong}")...)
	_, addr := startProxy(t, cfg)
	out, err := runCLI("-h", "127.0.0.1", "-P", strings.Split(addr, ":")[1], "-u", "broken", "-px", "-e", "select 1", testserver.Database)
	if err == nil {
		t.Fatalf("a failed backend login succeeded: %s", out)
	}
	for _, m := range []*testserver.MariaDB{repl.Primary, repl.Replica} {
		if strings.Contains(out, fmt.Sprint(m.Port)) {
			t.Fatalf("the client learns a server's address: %s", out)
		}
	}
	t.Log(out)
}

// TestCursorInAStoredProgram: a stored program that opens a cursor and then returns a result
// set leaves SERVER_STATUS_CURSOR_EXISTS on it; through the proxy it answers at once, as
// directly (the mariadb client does not use CLIENT_DEPRECATE_EOF: the flag is on an EOF).
func TestCursorInAStoredProgram(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	program := "BEGIN NOT ATOMIC DECLARE a INT; DECLARE c CURSOR FOR SELECT 41; OPEN c; FETCH c INTO a; CLOSE c; SELECT a + 1; END"
	for _, target := range []string{repl.Primary.Addr(), addr} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		host, port, _ := net.SplitHostPort(target)
		cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "-h", host, "-P", port, "-u", testserver.User,
			"-p"+testserver.Password, "--skip-column-names", "--batch", testserver.Database)
		cmd.Stdin = strings.NewReader("DELIMITER //\n" + program + " //\nDELIMITER ;\nSELECT 'after';\n")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || strings.TrimSpace(string(out)) != "42\nafter" {
			t.Fatalf("%s: %q %v (a hang ends at the test's deadline)", target, out, err)
		}
	}
}

// TestClientLeavingKillsItsStatement: a client that disconnects in the middle of a statement
// has it killed on the server, as ProxySQL does: no orphan runs on, holding its locks.
func TestClientLeavingKillsItsStatement(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c, _ := rawLogin(t, addr, testserver.User, testserver.Password, testserver.Database)
	c.WritePayload(0, append([]byte{gomysql.COM_QUERY}, "/*master*/ SELECT SLEEP(60)"...))
	c.W.Flush()
	inFlight(t, true, "/*master*/ SELECT SLEEP(60)")
	c.Close()
	testutil.WaitFor(t, "the statement killed on the server", 10*time.Second, func() bool {
		return rootQuery(t, repl.Primary, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '/*master*/ SELECT SLEEP(60)%'") == "0"
	})
}

// TestKillAndConnectionID: CONNECTION_ID() answers the id the handshake announced, on the
// primary and on a replica, and stays the same whatever server connection serves the session;
// KILL QUERY with it stops a running SLEEP, on the session's own server; KILL of an id no session
// has is 1094; another user cannot kill the session, and KILL CONNECTION ends it.
func TestKillAndConnectionID(t *testing.T) {
	root(t, repl.Primary, "CREATE USER IF NOT EXISTS 'other'@'%' IDENTIFIED BY 'other-secret'", "GRANT SELECT ON *.* TO 'other'@'%'")
	syncReplica(t)
	cfg := proxyConfig(t, "")
	cfg.Users = append(cfg.Users, mustUsers(t, "\n  - {name: other, password: other-secret}")...)
	_, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	victim := conn(t, db)
	id := str(t, victim, "SELECT CONNECTION_ID()")
	if got := str(t, victim, "/*master*/ SELECT CONNECTION_ID()"); got != id {
		t.Fatalf("CONNECTION_ID() on the primary %s, on a replica %s", got, id)
	}
	done := make(chan error, 1)
	go func() {
		_, err := victim.ExecContext(context.Background(), "/*master*/ SELECT SLEEP(60)")
		done <- err
	}()
	inFlight(t, true, "/*master*/ SELECT SLEEP(60)")
	killer := conn(t, db)
	run(t, killer, "KILL QUERY "+id)
	select {
	case err := <-done:
		t.Logf("the killed statement: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY with the announced id did not stop the statement")
	}
	if got := str(t, victim, "SELECT CONNECTION_ID()"); got != id {
		t.Fatalf("after the kill, CONNECTION_ID() is %s; want %s", got, id)
	}
	if _, err := killer.ExecContext(context.Background(), "KILL 999999"); err == nil || !strings.Contains(err.Error(), "1094") {
		t.Fatalf("KILL of an unknown id: %v", err)
	}
	other := conn(t, openDSN(t, fmt.Sprintf("other:other-secret@tcp(%s)/%s", addr, testserver.Database)))
	if _, err := other.ExecContext(context.Background(), "KILL "+id); err == nil || !strings.Contains(err.Error(), "1095") {
		t.Fatalf("another user's KILL: %v", err)
	}
	run(t, killer, "KILL CONNECTION "+id)
	if _, err := victim.ExecContext(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("a killed session runs on")
	}
}

// TestKillUser: KILL USER name@host ends the sessions of the user whose client host matches
// the pattern (none for another host) and answers with how many, as the server does.
func TestKillUser(t *testing.T) {
	root(t, repl.Primary, "CREATE USER IF NOT EXISTS 'victim'@'%' IDENTIFIED BY 'victim-secret'", "GRANT SELECT ON *.* TO 'victim'@'%'")
	syncReplica(t)
	_, addr := startProxy(t, proxyConfig(t, ""))
	victimDB := openDSN(t, fmt.Sprintf("victim:victim-secret@tcp(%s)/%s", addr, testserver.Database))
	v1, v2 := conn(t, victimDB), conn(t, victimDB)
	run(t, v1, "SELECT 1")
	run(t, v2, "SELECT 1")
	killer := conn(t, openDB(t, addr, ""))
	for _, c := range []struct {
		stmt string
		want int64
	}{{"KILL USER victim@'10.9.%'", 0}, {"KILL QUERY USER victim@'127.0.0.%'", 2}, {"KILL CONNECTION USER 'victim'@'%'", 2}} {
		res, err := killer.ExecContext(context.Background(), c.stmt)
		if err != nil {
			t.Fatalf("%s: %v", c.stmt, err)
		}
		if n, _ := res.RowsAffected(); n != c.want {
			t.Fatalf("%s: %d affected, want %d", c.stmt, n, c.want)
		}
		if c.want == 0 {
			run(t, v1, "SELECT 1") // not of that host: still there
		}
	}
	for _, v := range []*sql.Conn{v1, v2} {
		if _, err := v.ExecContext(context.Background(), "SELECT 1"); err == nil {
			t.Fatal("a session of the killed user runs on")
		}
	}
}
