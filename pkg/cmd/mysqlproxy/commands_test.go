package mysqlproxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	gm "github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
)

// gmConnect logs in through addr with go-mysql's client (it exposes warnings, field lists and
// raw commands).
func gmConnect(t *testing.T, addr string, opts ...gm.Option) *gm.Conn {
	t.Helper()
	c, err := gm.Connect(addr, testserver.User, testserver.Password, testserver.Database, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw sends one command and reads its first response packet.
func raw(t *testing.T, c *gm.Conn, cmd byte, arg []byte) []byte {
	t.Helper()
	c.ResetSequence()
	if err := c.WritePacket(append([]byte{0, 0, 0, 0, cmd}, arg...)); err != nil {
		t.Fatal(err)
	}
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCommands: every command of the protocol, through the proxy.
func TestCommands(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	c := gmConnect(t, addr)
	if err := c.Ping(); err != nil {
		t.Fatalf("COM_PING: %v", err)
	}
	if p := raw(t, c, mysql.COM_STATISTICS, nil); !bytes.HasPrefix(p, []byte("Uptime:")) {
		t.Fatalf("COM_STATISTICS: %q", p)
	}
	if _, err := c.Execute("create table if not exists cmdt (id int primary key, v varchar(10))"); err != nil {
		t.Fatal(err)
	}
	syncReplica(t)
	fields, err := c.FieldList("cmdt", "")
	if err != nil || len(fields) != 2 || string(fields[1].Name) != "v" {
		t.Fatalf("COM_FIELD_LIST: %v %v", fields, err)
	}
	if err := c.UseDB("mysql"); err != nil {
		t.Fatalf("COM_INIT_DB: %v", err)
	}
	r, err := c.Execute("select database(), @@server_id")
	if err != nil || val(r.Values[0][0]) != "mysql" || val(r.Values[0][1]) != "2" {
		t.Fatalf("after COM_INIT_DB a read on the replica: %v %v", r.Values, err)
	}
	if err := c.UseDB("nosuchdb"); err == nil || !strings.Contains(err.Error(), "1049") {
		t.Fatalf("COM_INIT_DB of a missing schema: %v", err)
	}
	c.UseDB(testserver.Database)
	// Warnings and status flags come from the server, untouched.
	r, err = c.Execute("do 1/0") // an OK packet with a warning
	if err != nil || r.Warnings != 1 {
		t.Fatalf("warnings: %+v %v", r, err)
	}
	// COM_SET_OPTION: multi-statements off, then on.
	if p := raw(t, c, mysql.COM_SET_OPTION, []byte{1, 0}); p[0] != 0xFE {
		t.Fatalf("COM_SET_OPTION off: %x", p)
	}
	if _, err := c.Execute("select 1; select 2"); err == nil {
		t.Fatal("a multi-statement ran with the option off")
	}
	if p := raw(t, c, mysql.COM_SET_OPTION, []byte{0, 0}); p[0] != 0xFE {
		t.Fatalf("COM_SET_OPTION on: %x", p)
	}
	var results int
	if _, err := c.ExecuteMultiple("select 1; select 2", func(*mysql.Result, error) { results++ }); err != nil || results != 2 {
		t.Fatalf("multi-statement after COM_SET_OPTION on: %d %v", results, err)
	}
	// COM_RESET_CONNECTION: user variables and prepared statements are gone.
	c.Execute("set @v = 7")
	if p := raw(t, c, mysql.COM_RESET_CONNECTION, nil); p[0] != 0 {
		t.Fatalf("COM_RESET_CONNECTION: %x", p)
	}
	r, err = c.Execute("select @v")
	if err != nil || !(r.Values[0][0].Value() == nil) {
		t.Fatalf("@v after a reset: %v %v", r.Values, err)
	}
	// COM_QUIT ends the connection.
	c.ResetSequence()
	c.WritePacket([]byte{0, 0, 0, 0, mysql.COM_QUIT})
	if _, err := c.ReadPacket(); err == nil {
		t.Fatal("the connection is still open after COM_QUIT")
	}
}

// TestChangeUser: COM_CHANGE_USER logs in again against the handshake's scramble; the session's
// state is reset and the new user's default schema applies.
func TestChangeUser(t *testing.T) {
	cfg := proxyConfig(t, "")
	cfg.Users = append(cfg.Users, mustUsers(t, "\n  - {name: other, password: otherpw, backend_user: runner, backend_password: runner123456, schema: mysql}\n")...)
	_, addr := startProxy(t, cfg)
	c, salt := rawLogin(t, addr, testserver.User, testserver.Password, testserver.Database)
	if p := rawCommand(t, c, []byte("\x03set @keep = 1")); p[0] != 0 {
		t.Fatalf("set: %q", p)
	}
	auth := mysql.CalcNativePassword(salt, []byte("otherpw"))
	arg := append([]byte{mysql.COM_CHANGE_USER}, "other\x00"...)
	arg = append(append(append(arg, byte(len(auth))), auth...), 0) // no schema: the user's default
	arg = append(arg, mysql.DEFAULT_COLLATION_ID, 0)
	arg = append(arg, "mysql_native_password\x00"...)
	const thread = "/*master*/ select id from information_schema.processlist where id = connection_id()"
	before := rawQuery(t, c, thread)
	if len(before) != 1 {
		t.Fatalf("the session's thread in the processlist: %q", before)
	}
	if p := rawCommand(t, c, arg); p[0] != 0 {
		t.Fatalf("COM_CHANGE_USER: %q", p)
	}
	// As on a server, the session keeps its thread: CONNECTION_ID() is still its processlist id.
	if after := rawQuery(t, c, thread); len(after) != 1 || !bytes.Equal(after[0], before[0]) {
		t.Fatalf("the session's thread after COM_CHANGE_USER: %q, before %q", after, before)
	}
	if p := rawCommand(t, c, []byte{mysql.COM_RESET_CONNECTION}); p[0] != 0 {
		t.Fatalf("COM_RESET_CONNECTION: %q", p)
	}
	if after := rawQuery(t, c, thread); len(after) != 1 || !bytes.Equal(after[0], before[0]) {
		t.Fatalf("the session's thread after COM_RESET_CONNECTION: %q, before %q", after, before)
	}
	gc := gmConnectAs(t, addr, "other", "otherpw")
	r, err := gc.Execute("select database()")
	if err != nil || val(r.Values[0][0]) != "mysql" {
		t.Fatalf("the other user's default schema: %v %v", r.Values, err)
	}
	wrong := mysql.CalcNativePassword(salt, []byte("bad"))
	arg = append([]byte{mysql.COM_CHANGE_USER}, "other\x00"...)
	arg = append(append(append(arg, byte(len(wrong))), wrong...), 0)
	if p := rawCommand(t, c, arg); p[0] != 0xFF || !strings.Contains(string(p), "Access denied for user 'other'") {
		t.Fatalf("COM_CHANGE_USER with a wrong password: %q", p)
	}
}

// gmConnectAs logs in through addr as user with go-mysql's client.
func gmConnectAs(t *testing.T, addr, user, password string) *gm.Conn {
	t.Helper()
	c, err := gm.Connect(addr, user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestEmptyAndMultipleResults: a zero-row SELECT is a result set with columns (the original sent
// OK); multi-statements and CALL return several result sets.
func TestEmptyAndMultipleResults(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	db := openDB(t, addr, "multiStatements=true")
	rows, err := db.Query("select 1 as a, 2 as b from dual where 1 = 0")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	if rows.Next() || strings.Join(cols, ",") != "a,b" {
		t.Fatalf("empty result: columns %v", cols)
	}
	rows.Close()
	if _, err := db.Exec("drop procedure if exists two; create procedure two() begin select 1 as x; select 2 as y, 3 as z; end"); err != nil {
		t.Fatal(err)
	}
	syncReplica(t)
	for _, q := range []string{"call two()", "select 1 as x; select 2 as y, 3 as z"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		sets := 0
		for {
			for rows.Next() {
			}
			sets++
			if !rows.NextResultSet() {
				break
			}
		}
		if err := rows.Err(); err != nil || sets != 2 {
			t.Fatalf("%s: %d result sets, %v", q, sets, err)
		}
		rows.Close()
	}
}

// TestLargeRowsAndParameters: a row and parameters over 16 MiB cross the proxy as split packets,
// by text query and by prepared statement (long data), and come back the same.
func TestLargeRowsAndParameters(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	db := openDB(t, addr, "maxAllowedPacket=0")
	if _, err := db.Exec("create table if not exists big (id int primary key, b longblob)"); err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("0123456789abcdef"), (17<<20)/16+3) // 17 MiB and a bit
	want := sha256.Sum256(blob)
	if _, err := db.Exec("replace into big values (1, ?)", blob); err != nil { // prepared: long data
		t.Fatalf("17 MiB parameter: %v", err)
	}
	if _, err := db.Exec(fmt.Sprintf("replace into big values (2, '%s')", blob)); err != nil { // a 17 MiB COM_QUERY
		t.Fatalf("17 MiB query: %v", err)
	}
	syncReplica(t)
	for id := 1; id <= 2; id++ {
		var got []byte
		if err := db.QueryRow("select b from big where id = ?", id).Scan(&got); err != nil {
			t.Fatalf("row %d: %v", id, err)
		}
		if sha256.Sum256(got) != want {
			t.Fatalf("row %d came back as %d bytes, not the %d sent", id, len(got), len(blob))
		}
	}
	var n int
	if err := db.QueryRow("select length(repeat('x', 20 * 1024 * 1024))").Scan(&n); err != nil || n != 20<<20 {
		t.Fatalf("computed 20 MiB: %d %v", n, err)
	}
}

// TestLoadDataLocal: LOAD DATA LOCAL INFILE is relayed when the client allows it.
func TestLoadDataLocal(t *testing.T) {
	_, addr := startProxy(t, proxyConfig(t, ""))
	driver.RegisterReaderHandler("rows", func() io.Reader { return strings.NewReader("1\ta\n2\tb\n3\tc\n") })
	defer driver.DeregisterReaderHandler("rows")
	db := openDB(t, addr, "")
	db.Exec("create table if not exists loaded (id int primary key, v varchar(10))")
	db.Exec("delete from loaded")
	res, err := db.Exec("load data local infile 'Reader::rows' into table loaded")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 3 {
		t.Fatalf("%d rows loaded", n)
	}
}

var _ = errors.New

// val is a go-mysql field value as text.
func val(fv mysql.FieldValue) string {
	if b, ok := fv.Value().([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(fv.Value())
}
