package mysqlproxy

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// A real MariaDB primary and replica with GTID replication, shared by the tests of this package.
var repl *testserver.Replication

// serverIDs: 1 is the primary, 2 the replica.
const (
	primaryID = 1
	replicaID = 2
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Binaries the tests start serve no HTTP endpoint unless a test asks (its default port
	// would be shared by every test process).
	os.Setenv("SLARDAR_HTTP_LISTEN", "")
	mysql.SetLogger(log.New(io.Discard, "", 0))
	dir, err := os.MkdirTemp("", "mysqlproxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = filepath.Join(dir, "bin")
	os.Mkdir(binDir, 0o755)
	if repl, err = testserver.StartReplication(context.Background(), dir, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "starting MariaDB replication (make test installs MariaDB):", err)
		return 1
	}
	defer repl.Stop()
	return m.Run()
}

// proxyConfig is a mysql-proxy with one listener "db": writes to the primary, reads to the
// replica, and the test user.
func proxyConfig(t *testing.T, extra string) *config.MySQLFile {
	t.Helper()
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	up := func(name string, port int) string {
		return fmt.Sprintf("  %s: {typ: mysql, user: %s, pass: %s, name: %s, timeout: 2, servers: [{host: 127.0.0.1, port: %d}]}\n",
			name, testserver.User, testserver.Password, testserver.Database, port)
	}
	y := fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
checkups: {interval: 200ms}
proxy: {shutdown_grace: 3s}
listeners: [{listen: "127.0.0.1:%d", upstream: db}]
users:
  - {name: %s, password: %s, schema: %s}
upstreams:
`, port, testserver.User, testserver.Password, testserver.Database) + up("db", repl.Primary.Port) + up("db_read", repl.Replica.Port) + extra
	cfg, err := config.ParseMySQL([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startProxy runs mysql-proxy in-process and returns it and its data address.
func startProxy(t *testing.T, cfg *config.MySQLFile) (*Daemon, string) {
	t.Helper()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return startProxyLog(t, cfg, w)
}

// openDB is a go-sql-driver pool through addr.
func openDB(t *testing.T, addr string, params string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=5s&%s", testserver.User, testserver.Password, addr, testserver.Database, params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// cli runs the real mariadb client through addr with statements and returns its output.
func cli(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	all := append([]string{"--no-defaults", "-h", host, "-P", port, "-u", testserver.User, "-p" + testserver.Password,
		"--connect-timeout=5", "--skip-column-names", "--batch"}, args...)
	out, err := exec.Command("mariadb", all...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// serverID asks through conn which server answered.
func serverID(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string) int {
	t.Helper()
	var id int
	if err := q.QueryRowContext(context.Background(), query).Scan(&id); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return id
}

func syncReplica(t *testing.T) {
	t.Helper()
	if err := repl.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSmoke: the talk's split check through the real client.
func TestSmoke(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	out, err := cli(t, addr, "-e", "select @@server_id", testserver.Database)
	if err != nil || out != "2" {
		t.Fatalf("read: %q %v", out, err)
	}
	out, err = cli(t, addr, "--comments", "-e", "/*master*/ select @@server_id", testserver.Database)
	if err != nil || out != "1" {
		t.Fatalf("hinted: %q %v", out, err)
	}
}

// mustUsers parses YAML user entries.
func mustUsers(t *testing.T, y string) []config.MySQLUser {
	t.Helper()
	f, err := config.ParseMySQL([]byte("users:" + y))
	if err != nil {
		t.Fatal(err)
	}
	return f.Users
}

// runCLI runs the mariadb client with args.
func runCLI(args ...string) (string, error) {
	out, err := exec.Command("mariadb", append([]string{"--no-defaults", "--connect-timeout=5", "--batch"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// rawLogin logs in with mysql_native_password over a bare connection and returns it with the
// handshake's scramble (what COM_CHANGE_USER needs).
func rawLogin(t *testing.T, addr, user, password, schema string) (*wire.Conn, []byte) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := wire.NewConn(nc)
	p, _, err := c.ReadPayload(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	v := strings.IndexByte(string(p[1:]), 0) + 2
	salt := append(append([]byte(nil), p[v+4:v+12]...), p[v+31:v+43]...)
	caps := gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH |
		gomysql.CLIENT_CONNECT_WITH_DB | gomysql.CLIENT_TRANSACTIONS | gomysql.CLIENT_MULTI_RESULTS | gomysql.CLIENT_DEPRECATE_EOF
	resp := binary.LittleEndian.AppendUint32(nil, caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	resp = append(resp, gomysql.DEFAULT_COLLATION_ID)
	resp = append(resp, make([]byte, 23)...)
	auth := gomysql.CalcNativePassword(salt, []byte(password))
	resp = append(append(resp, user...), 0, byte(len(auth)))
	resp = append(append(resp, auth...), schema...)
	resp = append(append(resp, 0), "mysql_native_password\x00"...)
	c.WritePayload(1, resp)
	c.W.Flush()
	if p, _, err = c.ReadPayload(1 << 16); err != nil || p[0] != 0 {
		t.Fatalf("raw login: %q %v", p, err)
	}
	return c, salt
}

// rawCommand sends one command on a raw connection and returns the first response packet.
func rawCommand(t *testing.T, c *wire.Conn, payload []byte) []byte {
	t.Helper()
	c.WritePayload(0, payload)
	c.W.Flush()
	p, _, err := c.ReadPayload(1 << 24)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rawQuery runs a query on a rawLogin connection (CLIENT_DEPRECATE_EOF: no EOF after the
// columns) and returns its rows' payloads; an OK or an error is returned alone.
func rawQuery(t *testing.T, c *wire.Conn, query string) [][]byte {
	t.Helper()
	first := rawCommand(t, c, append([]byte{gomysql.COM_QUERY}, query...))
	if first[0] == 0xFF || first[0] == 0 || first[0] >= 0xFB {
		return [][]byte{first}
	}
	var rows [][]byte
	for n := 0; ; n++ {
		p, _, err := c.ReadPayload(1 << 24)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case n < int(first[0]): // a column definition
		case p[0] == 0xFE && len(p) < 0xFFFFFF:
			return rows
		case p[0] == 0xFF:
			return append(rows, p)
		default:
			rows = append(rows, p)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startProxyLog runs mysql-proxy in-process, logging to w.
func startProxyLog(t *testing.T, cfg *config.MySQLFile, w io.Writer) (*Daemon, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, slog.New(slog.NewTextHandler(w, nil)), cfg, func() (*config.MySQLFile, error) { return cfg, nil })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	return d, d.ListenerAddr("db")
}

// openDSN is a go-sql-driver pool for a DSN of the test's own.
func openDSN(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
