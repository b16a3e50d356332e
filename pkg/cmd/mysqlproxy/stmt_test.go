package mysqlproxy

import (
	"context"
	"database/sql"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// preparedCount is the primary's and the replica's count of prepared statements.
func preparedCount(t *testing.T) (int, int) {
	t.Helper()
	count := func(m *testserver.MariaDB) int {
		db, err := sql.Open("mysql", m.DSN("root"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var name string
		var n int
		if err := db.QueryRow("show global status like 'Prepared_stmt_count'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return count(repl.Primary), count(repl.Replica)
}

// TestPreparedStatements: binary prepared statements through go-sql-driver run where their class
// says (a read on the replica, in a transaction on the primary, prepared there lazily), are
// closed on the backends when the client closes them, and are bounded per session.
func TestPreparedStatements(t *testing.T) {
	cfg := proxyConfig(t, "mysql: {max_prepared_statements: 5}\n")
	_, addr := startProxy(t, cfg)
	db := openDB(t, addr, "interpolateParams=false")
	c := conn(t, db)
	ctx := context.Background()
	p0, r0 := preparedCount(t)
	read, err := c.PrepareContext(ctx, "select @@server_id + ?")
	if err != nil {
		t.Fatal(err)
	}
	var id int
	if err := read.QueryRowContext(ctx, 0).Scan(&id); err != nil || id != replicaID {
		t.Fatalf("prepared read: %d %v", id, err)
	}
	run(t, c, "begin") // on the same connection: the same statement id runs in the transaction
	if err := read.QueryRowContext(ctx, 0).Scan(&id); err != nil || id != primaryID {
		t.Fatalf("the same statement in a transaction: %d %v", id, err)
	}
	if p, r := preparedCount(t); p != p0+1 || r != r0+1 {
		t.Fatalf("prepared on the primary %d (was %d), the replica %d (was %d)", p, p0, r, r0)
	}
	run(t, c, "commit")
	read.Close()
	testutil.WaitFor(t, "the statement closed on both servers", 5e9, func() bool {
		p, r := preparedCount(t)
		return p == p0 && r == r0
	})
	var stmts []*sql.Stmt
	for i := range 6 {
		st, err := c.PrepareContext(ctx, "select ? + "+itoa(i))
		if i < 5 && err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			if err == nil || !strings.Contains(err.Error(), "1461") {
				t.Fatalf("the sixth statement: %v", err)
			}
			break
		}
		stmts = append(stmts, st)
	}
	for _, st := range stmts {
		st.Close()
	}
}

// TestCursorFetch: COM_STMT_EXECUTE with a read-only cursor, then COM_STMT_FETCH, on the
// connection the statement ran on.
func TestCursorFetch(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c, _ := rawLogin(t, addr, testserver.User, testserver.Password, testserver.Database)
	p := rawCommand(t, c, append([]byte{gomysql.COM_STMT_PREPARE}, "select seq from seq_1_to_10"...))
	if p[0] != 0 {
		t.Fatalf("prepare: %q", p)
	}
	id := binary.LittleEndian.Uint32(p[1:])
	drain(t, c) // column definitions (no EOF: DEPRECATE_EOF)
	exec := binary.LittleEndian.AppendUint32([]byte{gomysql.COM_STMT_EXECUTE}, id)
	exec = append(exec, 1 /* CURSOR_TYPE_READ_ONLY */, 1, 0, 0, 0)
	c.WritePayload(0, exec)
	c.W.Flush()
	packets := readUntil(t, c, func(p []byte) bool { return p[0] == 0xFE && len(p) < 0xFFFFFF })
	status := binary.LittleEndian.Uint16(packets[len(packets)-1][3:])
	if status&gomysql.SERVER_STATUS_CURSOR_EXISTS == 0 {
		t.Fatalf("no cursor: status %#x", status)
	}
	fetch := binary.LittleEndian.AppendUint32([]byte{gomysql.COM_STMT_FETCH}, id)
	fetch = binary.LittleEndian.AppendUint32(fetch, 4)
	rows := 0
	for last := false; !last; {
		c.WritePayload(0, fetch)
		c.W.Flush()
		for _, p := range readUntil(t, c, func(p []byte) bool { return p[0] == 0xFE || p[0] == 0xFF }) {
			switch p[0] {
			case 0x00:
				rows++
			case 0xFF:
				t.Fatalf("fetch: %q", p)
			case 0xFE:
				last = binary.LittleEndian.Uint16(p[3:])&gomysql.SERVER_STATUS_LAST_ROW_SEND != 0
			}
		}
	}
	if rows != 10 {
		t.Fatalf("fetched %d rows", rows)
	}
}

// drain reads the packets the server sends after a prepare OK up to a quiet moment.
func drain(t *testing.T, c interface {
	ReadPayload(int) ([]byte, byte, error)
}) {
	t.Helper()
	if p, _, err := c.ReadPayload(1 << 20); err != nil || len(p) == 0 {
		t.Fatalf("column definition: %v", err)
	}
}

// readUntil reads packets up to and with the first one last accepts.
func readUntil(t *testing.T, c interface {
	ReadPayload(int) ([]byte, byte, error)
}, last func([]byte) bool) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		p, _, err := c.ReadPayload(1 << 24)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
		if len(p) > 0 && last(p) {
			return out
		}
	}
}

// TestParamTypesResent: a client sends a statement's parameter types with its first execution
// only (libmysqlclient does); when a later execution runs on another server (here: in a
// transaction, on the primary), the proxy sends the types there.
func TestParamTypesResent(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c, _ := rawLogin(t, addr, testserver.User, testserver.Password, testserver.Database)
	p := rawCommand(t, c, append([]byte{gomysql.COM_STMT_PREPARE}, "select concat(?, '-', @@server_id)"...))
	if p[0] != 0 {
		t.Fatalf("prepare: %q", p)
	}
	id := binary.LittleEndian.Uint32(p[1:])
	for range 2 { // the parameter's and the column's definitions (no EOF: DEPRECATE_EOF)
		if _, _, err := c.ReadPayload(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	execute := func(withTypes bool) string {
		t.Helper()
		b := binary.LittleEndian.AppendUint32([]byte{gomysql.COM_STMT_EXECUTE}, id)
		b = append(b, 0, 1, 0, 0, 0, 0) // no cursor, iteration 1, null bitmap
		if withTypes {
			b = append(b, 1, gomysql.MYSQL_TYPE_LONGLONG, 0)
		} else {
			b = append(b, 0)
		}
		b = binary.LittleEndian.AppendUint64(b, 7)
		c.WritePayload(0, b)
		c.W.Flush()
		var row []byte
		for _, p := range readUntil(t, c, func(p []byte) bool { return p[0] == 0xFE || p[0] == 0xFF }) {
			if p[0] == 0xFF {
				t.Fatalf("execute: %q", p)
			}
			if p[0] == 0x00 && len(p) > 1 {
				row = p
			}
		}
		return string(row[3 : 3+int(row[2])]) // header, null bitmap, a length-prefixed string
	}
	if got := execute(true); got != "7-2" {
		t.Fatalf("first execution, on the replica: %q", got)
	}
	if p := rawCommand(t, c, []byte("\x03begin")); p[0] != 0 {
		t.Fatalf("begin: %q", p)
	}
	if got := execute(false); got != "7-1" {
		t.Fatalf("execution without types, in a transaction on the primary: %q", got)
	}
}

// TestBulkExecute: a MariaDB client that negotiated MARIADB_CLIENT_STMT_BULK_OPERATIONS runs
// COM_STMT_BULK_EXECUTE (what MariaDB connectors use for batch inserts) through the proxy.
func TestBulkExecute(t *testing.T) {
	root(t, repl.Primary, "CREATE TABLE IF NOT EXISTS "+testserver.Database+".bulk (a INT)", "DELETE FROM "+testserver.Database+".bulk")
	syncReplica(t)
	_, addr := startProxy(t, proxyConfig(t, ""))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := wire.NewConn(nc)
	p, _, err := c.ReadPayload(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	v := strings.IndexByte(string(p[1:]), 0) + 2
	salt := append(append([]byte(nil), p[v+4:v+12]...), p[v+31:v+43]...)
	ext := binary.LittleEndian.Uint32(p[v+27:])
	if ext&uint32(backend.MariaDBClientStmtBulk>>32) == 0 {
		t.Fatalf("the proxy does not offer bulk operations: %#x", ext)
	}
	caps := gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH | gomysql.CLIENT_CONNECT_WITH_DB |
		gomysql.CLIENT_TRANSACTIONS | gomysql.CLIENT_MULTI_RESULTS | gomysql.CLIENT_DEPRECATE_EOF // bit 0 clear: a MariaDB client
	resp := binary.LittleEndian.AppendUint32(nil, caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	resp = append(resp, 45)
	resp = append(resp, make([]byte, 19)...)
	resp = binary.LittleEndian.AppendUint32(resp, uint32(backend.MariaDBClientStmtBulk>>32))
	auth := gomysql.CalcNativePassword(salt, []byte(testserver.Password))
	resp = append(append(resp, testserver.User...), 0, byte(len(auth)))
	resp = append(append(resp, auth...), testserver.Database...)
	resp = append(append(resp, 0), "mysql_native_password\x00"...)
	c.WritePayload(1, resp)
	c.W.Flush()
	if p, _, err = c.ReadPayload(1 << 16); err != nil || p[0] != 0 {
		t.Fatalf("login: %q %v", p, err)
	}
	p = rawCommand(t, c, append([]byte{gomysql.COM_STMT_PREPARE}, "INSERT INTO bulk VALUES (?)"...))
	if p[0] != 0 {
		t.Fatalf("prepare: %q", p)
	}
	id := binary.LittleEndian.Uint32(p[1:])
	c.ReadPayload(1 << 16) // the parameter's definition
	bulk := binary.LittleEndian.AppendUint32([]byte{0xfa}, id)
	bulk = binary.LittleEndian.AppendUint16(bulk, 128)    // the types follow
	bulk = append(bulk, byte(gomysql.MYSQL_TYPE_LONG), 0) // one INT parameter
	for _, v := range []uint32{1, 2, 3} {
		bulk = binary.LittleEndian.AppendUint32(append(bulk, 0), v)
	}
	if p = rawCommand(t, c, bulk); p[0] != 0 || p[1] != 3 {
		t.Fatalf("bulk execute: %q (want OK, 3 rows)", p)
	}
	if got := rootQuery(t, repl.Primary, "SELECT GROUP_CONCAT(a ORDER BY a) FROM "+testserver.Database+".bulk"); got != "1,2,3" {
		t.Fatalf("rows: %q", got)
	}
}
