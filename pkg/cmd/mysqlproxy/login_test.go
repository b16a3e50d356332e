package mysqlproxy

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

const sha2Users = `
  - {name: sha2, password: sha2secret, auth: caching_sha2_password, backend_user: runner, backend_password: runner123456, schema: upyun}
  - {name: nopass, password: "", backend_user: runner, backend_password: runner123456}
`

// TestLogins: mysql_native_password and caching_sha2_password (RSA full authentication, then the
// fast path, and over TLS) with go-sql-driver and the mariadb client; wrong passwords and
// unknown users get MySQL's 1045.
func TestLogins(t *testing.T) {
	cfg := proxyConfig(t, "")
	cfg.Users = append(cfg.Users, mustUsers(t, sha2Users)...)
	_, addr := startProxy(t, cfg)
	dsn := func(user, pass, params string) string {
		return fmt.Sprintf("%s:%s@tcp(%s)/upyun?timeout=5s&%s", user, pass, addr, params)
	}
	ping := func(d string) error {
		db, err := sql.Open("mysql", d)
		if err != nil {
			return err
		}
		defer db.Close()
		var one int
		return db.QueryRow("select 1").Scan(&one)
	}
	tests := []struct {
		name, dsn, want string
	}{
		{name: "native", dsn: dsn(testserver.User, testserver.Password, "")},
		{name: "native over TLS", dsn: dsn(testserver.User, testserver.Password, "tls=skip-verify")},
		{name: "caching_sha2 full auth with the RSA key", dsn: dsn("sha2", "sha2secret", "")},
		{name: "caching_sha2 fast path", dsn: dsn("sha2", "sha2secret", "")},
		{name: "caching_sha2 over TLS", dsn: dsn("sha2", "sha2secret", "tls=skip-verify")},
		{name: "no password", dsn: dsn("nopass", "", "")},
		{name: "wrong password", dsn: dsn(testserver.User, "nope", ""), want: "Error 1045 (28000): Access denied for user 'runner'@'127.0.0.1' (using password: YES)"},
		{name: "unknown user", dsn: dsn("nobody", "x", ""), want: "Error 1045 (28000): Access denied for user 'nobody'@'127.0.0.1' (using password: YES)"},
		{name: "sha2 wrong password", dsn: dsn("sha2", "nope", ""), want: "Error 1045 (28000): Access denied for user 'sha2'@'127.0.0.1' (using password: YES)"},
		{name: "missing password", dsn: dsn(testserver.User, "", ""), want: "(using password: NO)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ping(tt.dsn)
			if tt.want == "" && err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("got %v; want %q", err, tt.want)
			}
		})
	}
	// The mariadb client, plain and with TLS, native and caching_sha2.
	for _, args := range [][]string{{}, {"--ssl"}} {
		if out, err := cli(t, addr, append(args, "-e", "select current_user()")...); err != nil || !strings.HasPrefix(out, "runner@") {
			t.Fatalf("mariadb %v: %q %v", args, out, err)
		}
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := runCLI("-h", host, "-P", port, "-u", "sha2", "-psha2secret", "--ssl", "--skip-column-names", "-e", "select 42")
	if err != nil || out != "42" {
		t.Fatalf("mariadb --ssl as a caching_sha2 user: %q %v", out, err)
	}
}

// TestHandshakeSalt: every handshake's scramble is 20 bytes without NUL (the original's
// lua-resty-mysql failed ~7.5 % of logins on a NUL), the connection ids of connections open at
// once are unique (a server thread's id, once its session ended, may serve the next: see
// session.Anchor), and 300 logins in a row all succeed.
func TestHandshakeSalt(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	ids := map[uint32]bool{}
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		p, _, err := wire.ReadPayload(bufio.NewReader(c), 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		version := strings.IndexByte(string(p[1:]), 0) + 2
		id := binary.LittleEndian.Uint32(p[version:])
		salt := append(append([]byte(nil), p[version+4:version+12]...), p[version+31:version+43]...)
		if ids[id] {
			t.Fatalf("connection id %d given twice", id)
		}
		ids[id] = true
		for _, b := range salt {
			if b == 0 {
				t.Fatalf("salt %x has a NUL", salt)
			}
		}
	}
	db := openDB(t, addr, "")
	for i := range 300 {
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		conn.Raw(func(any) error { return nil })
		conn.Close()
		db.SetMaxIdleConns(0) // a new login next time
	}
}

// TestSecretsWarnings: a password on the command line, or a users file other users may read,
// is logged at start; a users file only its owner reads is not.
func TestSecretsWarnings(t *testing.T) {
	dir := t.TempDir()
	private, public := filepath.Join(dir, "private.yaml"), filepath.Join(dir, "public.yaml")
	os.WriteFile(private, []byte("- {name: a, password: b}\n"), 0o600)
	os.WriteFile(public, []byte("- {name: c, password: d}\n"), 0o644)
	warnings := func(args ...string) string {
		t.Helper()
		o := &Options{}
		fl := NewCommand().Flags()
		if err := fl.Parse(args); err != nil {
			t.Fatal(err)
		}
		o.Users, _ = fl.GetStringArray("user")
		o.UsersFile, _ = fl.GetString("users-file")
		cfg, err := o.config(fl)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		o.warnSecrets(slog.New(slog.NewTextHandler(&logs, nil)), fl, cfg)
		return logs.String()
	}
	if got := warnings("--user", "x:y"); !strings.Contains(got, "--user puts passwords in the command line") {
		t.Errorf("--user x:y: %q", got)
	}
	if got := warnings("--users-file", public); !strings.Contains(got, "readable by other users") {
		t.Errorf("a users file of mode 0644: %q", got)
	}
	if got := warnings("--users-file", private); got != "" {
		t.Errorf("a users file of mode 0600: %q", got)
	}
}

// TestHonestHandshake: the handshake announces the servers' own version (marked as the proxy)
// and default collation, and MariaDB's extended capabilities they offer; clients that ask for
// compression get it (zlib through the mariadb client, zstd from a client of the proxy's own).
func TestHonestHandshake(t *testing.T) {
	d, addr := startProxy(t, proxyConfig(t, ""))
	greeting := func(addr string) (version string, collation byte, caps uint64) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		p, _, err := wire.ReadPayload(bufio.NewReader(c), 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		end := strings.IndexByte(string(p[1:]), 0) + 1
		rest := p[end+1+4+9:]
		caps = uint64(binary.LittleEndian.Uint16(rest)) | uint64(binary.LittleEndian.Uint16(rest[3:]))<<16
		if caps&1 == 0 {
			caps |= uint64(binary.LittleEndian.Uint32(rest[12:])) << 32
		}
		return string(p[1:end]), rest[2], caps
	}
	server, serverColl, serverCaps := greeting(repl.Primary.Addr())
	version, coll, caps := greeting(addr)
	if version != server+"-slardar" || coll != serverColl {
		t.Fatalf("the proxy announces %q, collation %d; the server %q, %d", version, coll, server, serverColl)
	}
	if caps&1 != 0 || caps>>32&uint64(backend.ExtFraming) != serverCaps>>32&uint64(backend.ExtFraming) {
		t.Fatalf("MariaDB capabilities: the proxy offers %#x, the server %#x", caps, serverCaps)
	}
	if caps&0x20 == 0 { // CLIENT_COMPRESS
		t.Fatalf("no CLIENT_COMPRESS offered: %#x", caps)
	}
	out, err := cli(t, addr, "--compress", "-e", "SELECT REPEAT('x', 5000) = REPEAT('x', 5000), @@server_id", testserver.Database)
	if err != nil || out != "1\t2" {
		t.Fatalf("mariadb --compress: %q %v", out, err)
	}
	_ = d
}

// TestLearnedUsers: a user created on the server at run time logs in through the proxy, with
// the split (its mysql_native_password scramble, checked against the stored hash, yields what
// logs it in to every server); a wrong password is the server's 1045 for the client's host; a
// user of a plugin the proxy cannot check (client_ed25519) logs in through the primary and
// stays there; an account without a password logs in without one.
func TestLearnedUsers(t *testing.T) {
	for _, m := range []*testserver.MariaDB{repl.Replica, repl.Primary} { // the replica applies the user too
		if rootQuery(t, m, "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'") == "0" {
			root(t, m, "INSTALL SONAME 'auth_ed25519'")
		}
	}
	root(t, repl.Primary, "CREATE USER IF NOT EXISTS 'late'@'%' IDENTIFIED BY 'late-secret'",
		"GRANT SELECT ON *.* TO 'late'@'%'",
		"CREATE USER IF NOT EXISTS 'edward'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edward-secret')",
		"GRANT SELECT ON *.* TO 'edward'@'%'",
		"CREATE USER IF NOT EXISTS 'open'@'127.0.0.1'", "GRANT SELECT ON *.* TO 'open'@'127.0.0.1'")
	syncReplica(t)
	_, addr := startProxy(t, proxyConfig(t, ""))
	late := conn(t, openDSN(t, fmt.Sprintf("late:late-secret@tcp(%s)/%s", addr, testserver.Database)))
	if got := serverID(t, late, "SELECT @@server_id"); got != replicaID {
		t.Fatalf("a learned user's read: server %d", got)
	}
	if got := str(t, late, "/*master*/ SELECT CURRENT_USER()"); got != "late@%" {
		t.Fatalf("a learned user is %q on the primary", got)
	}
	_, err := openDSN(t, fmt.Sprintf("late:wrong@tcp(%s)/%s", addr, testserver.Database)).Exec("SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "1045") || !strings.Contains(err.Error(), "'late'@'127.0.0.1'") {
		t.Fatalf("a learned user with a wrong password: %v", err)
	}
	// A password changed a moment ago is the one that logs in, as on the server.
	root(t, repl.Primary, "CREATE USER IF NOT EXISTS 'changer'@'%' IDENTIFIED BY 'first-secret'", "GRANT SELECT ON *.* TO 'changer'@'%'")
	t.Cleanup(func() { root(t, repl.Primary, "DROP USER IF EXISTS 'changer'@'%'") })
	conn(t, openDSN(t, fmt.Sprintf("changer:first-secret@tcp(%s)/%s", addr, testserver.Database)))
	root(t, repl.Primary, "ALTER USER 'changer'@'%' IDENTIFIED BY 'second-secret'")
	syncReplica(t)
	conn(t, openDSN(t, fmt.Sprintf("changer:second-secret@tcp(%s)/%s", addr, testserver.Database)))
	if _, err := openDSN(t, fmt.Sprintf("changer:first-secret@tcp(%s)/%s", addr, testserver.Database)).Exec("SELECT 1"); err == nil {
		t.Fatal("the old password still logs in")
	}
	// An account created after the proxy read the accounts logs in at once, as on the server.
	root(t, repl.Primary, "CREATE USER IF NOT EXISTS 'fresh'@'%' IDENTIFIED BY 'fresh-secret'", "GRANT SELECT ON *.* TO 'fresh'@'%'")
	t.Cleanup(func() { root(t, repl.Primary, "DROP USER IF EXISTS 'fresh'@'%'") })
	if got := str(t, conn(t, openDSN(t, fmt.Sprintf("fresh:fresh-secret@tcp(%s)/%s", addr, testserver.Database))), "/*master*/ SELECT CURRENT_USER()"); got != "fresh@%" {
		t.Fatalf("an account created a moment ago is %q", got)
	}
	// An account without a password logs in with none (as on the server), not with one.
	open := conn(t, openDSN(t, fmt.Sprintf("open@tcp(%s)/%s", addr, testserver.Database)))
	if got := str(t, open, "/*master*/ SELECT CURRENT_USER()"); got != "open@127.0.0.1" {
		t.Fatalf("a passwordless account is %q", got)
	}
	if got := serverID(t, open, "SELECT @@server_id"); got != replicaID {
		t.Fatalf("a passwordless account's read: server %d", got)
	}
	_, err = openDSN(t, fmt.Sprintf("open:guess@tcp(%s)/%s", addr, testserver.Database)).Exec("SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "1045") {
		t.Fatalf("a passwordless account with a password: %v", err)
	}
	if out, err := runCLI("-h", "127.0.0.1", "-P", strings.Split(addr, ":")[1], "-u", "edward", "-pedward-secret", "--skip-column-names",
		"-e", "select @@server_id", testserver.Database); err != nil || out != "1" {
		t.Fatalf("the mariadb client as an ed25519 user: %q %v", out, err)
	}
	edward := conn(t, openDSN(t, fmt.Sprintf("edward:edward-secret@tcp(%s)/%s", addr, testserver.Database)))
	if got := serverID(t, edward, "SELECT @@server_id"); got != primaryID {
		t.Fatalf("a relayed login's read: server %d (it stays on its server connection)", got)
	}
	_, err = openDSN(t, fmt.Sprintf("edward:wrong@tcp(%s)/%s", addr, testserver.Database)).Exec("SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "1045") {
		t.Fatalf("a relayed login with a wrong password: %v", err)
	}
}

// TestLearnedUsersByName: on a server that resolves client names (skip_name_resolve off), an
// account of host 'localhost' is the one a TCP client from 127.0.0.1 logs in as, directly and
// so through the proxy; without resolution it is not.
func TestLearnedUsersByName(t *testing.T) {
	m := ownServer(t, "--skip-name-resolve=0")
	root(t, m, "CREATE USER IF NOT EXISTS 'local'@'localhost' IDENTIFIED BY 'local-secret'", "GRANT SELECT ON *.* TO 'local'@'localhost'")
	dsn := func(addr string) string { return fmt.Sprintf("local:local-secret@tcp(%s)/", addr) }
	if got := str(t, conn(t, openDSN(t, dsn(m.Addr()))), "SELECT CURRENT_USER()"); got != "local@localhost" {
		t.Fatalf("directly: %q", got)
	}
	_, addr := startProxy(t, singleConfig(t, m, ""))
	if got := str(t, conn(t, openDSN(t, dsn(addr))), "SELECT CURRENT_USER()"); got != "local@localhost" {
		t.Fatalf("through the proxy: %q", got)
	}
}

// TestMatchAccountHosts: an address matches patterns, never 'localhost'; a resolved name
// matches 'localhost'; the most specific account wins; the anonymous account matches any name.
func TestMatchAccountHosts(t *testing.T) {
	accounts := []account{{user: "u", host: "%", hash: "any"}, {user: "u", host: "localhost", hash: "local"}, {user: "u", host: "10.0.%", hash: "net"},
		{user: "u", host: "192.168.4.0/255.255.255.0", hash: "mask"}}
	for _, c := range []struct {
		hosts []string
		want  string
	}{
		{[]string{"127.0.0.1"}, "any"},
		{[]string{"127.0.0.1", "localhost"}, "local"},
		{[]string{"10.0.0.7"}, "net"},
		{[]string{"10.0.0.7", "app.example"}, "net"},
		{[]string{"192.168.4.9"}, "mask"},
	} {
		if a, ok := match(accounts, "u", c.hosts); !ok || a.hash != c.want {
			t.Errorf("%v: %+v %v, want %s", c.hosts, a, ok, c.want)
		}
	}
	if _, ok := match(accounts[1:2], "u", []string{"127.0.0.1"}); ok {
		t.Error("an address matched 'localhost'")
	}
	// The anonymous account matches every name, after a named one of the same host, before a
	// named one of a wider host.
	anon := append(accounts, account{user: "", host: "localhost", hash: "anon"}, account{user: "v", host: "%", hash: "v-any"})
	for _, c := range []struct {
		name string
		want string
	}{{"u", "local"}, {"v", "anon"}, {"w", "anon"}} {
		if a, ok := match(anon, c.name, []string{"127.0.0.1", "localhost"}); !ok || a.hash != c.want {
			t.Errorf("%s@localhost: %+v %v, want %s", c.name, a, ok, c.want)
		}
	}
	if a, ok := match(anon, "v", []string{"127.0.0.1"}); !ok || a.hash != "v-any" {
		t.Errorf("v@127.0.0.1: %+v %v", a, ok)
	}
}
