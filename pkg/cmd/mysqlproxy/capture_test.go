package mysqlproxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// TestCaptureRelaySeeds records real MariaDB responses — cursors, stored programs with result
// sets, multi-results, LOCAL INFILE, an error in the middle of rows, PROCEDURE ANALYSE,
// prepares and fetches, with and without CLIENT_DEPRECATE_EOF — as seeds of pkg/mysql/wire's
// FuzzRelay. It runs with SLARDAR_CAPTURE=1 (the seeds are committed); every run checks that
// the relay reads each capture to its end.
func TestCaptureRelaySeeds(t *testing.T) {
	root(t, repl.Primary, "CREATE TABLE IF NOT EXISTS "+testserver.Database+".analyse (a INT, b VARCHAR(8))",
		"REPLACE INTO "+testserver.Database+".analyse VALUES (1, 'x'), (2, 'y')",
		"CREATE OR REPLACE PROCEDURE "+testserver.Database+".two_results() BEGIN SELECT 1; SELECT 2, 3; END")
	for _, deprecate := range []bool{false, true} {
		c := captureLogin(t, repl.Primary.Addr(), deprecate)
		type capture struct {
			name string
			kind wire.Kind
			data []byte
		}
		var captures []capture
		query := func(name, q string, kind wire.Kind) []byte {
			data := c.exchange(t, append([]byte{gomysql.COM_QUERY}, q...), kind, deprecate)
			captures = append(captures, capture{name, kind, data})
			return data
		}
		query("cursor in a stored program", "BEGIN NOT ATOMIC DECLARE a INT; DECLARE c CURSOR FOR SELECT 41; OPEN c; FETCH c INTO a; CLOSE c; SELECT a + 1; END", wire.Results)
		query("procedure with two results", "CALL two_results()", wire.Results)
		query("multi-statement", "SELECT 1; SELECT 'a', NULL; DO 1", wire.Results)
		query("error in the middle of rows", "SELECT IF(seq = 3, (SELECT 1 UNION SELECT 2), seq) FROM seq_1_to_5", wire.Results)
		query("procedure analyse", "SELECT a, b FROM analyse PROCEDURE ANALYSE()", wire.Results)
		query("error", "SELECT * FROM no_such_table", wire.Results)
		query("local infile", "LOAD DATA LOCAL INFILE 'nothing' INTO TABLE analyse", wire.Results)
		prep := c.exchange(t, append([]byte{gomysql.COM_STMT_PREPARE}, "SELECT seq, ? FROM seq_1_to_10"...), wire.Prepare, deprecate)
		captures = append(captures, capture{"prepare", wire.Prepare, prep})
		id := binary.LittleEndian.Uint32(prep[5:])
		exec := binary.LittleEndian.AppendUint32([]byte{gomysql.COM_STMT_EXECUTE}, id)
		exec = append(exec, 1, 1, 0, 0, 0, 0, 1, byte(gomysql.MYSQL_TYPE_LONGLONG), 0)
		exec = binary.LittleEndian.AppendUint64(exec, 7)
		captures = append(captures, capture{"execute with a cursor", wire.Results, c.exchangeCursor(t, exec, deprecate)})
		fetch := binary.LittleEndian.AppendUint32([]byte{gomysql.COM_STMT_FETCH}, id)
		fetch = binary.LittleEndian.AppendUint32(fetch, 4)
		captures = append(captures, capture{"fetch", wire.Rows, c.exchange(t, fetch, wire.Rows, deprecate)})
		c.nc.Close()
		for _, cp := range captures {
			// Every capture relays to its end, and the client gets the server's bytes.
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			rl := wire.Relay{From: bufio.NewReader(bytes.NewReader(cp.data)), To: w, DeprecateEOF: deprecate, SessionTrack: true,
				Cursor: cp.name == "execute with a cursor", LocalInfile: func() error { return nil }}
			if _, err := rl.Relay(cp.kind); err != nil {
				t.Errorf("%s (deprecate EOF %v): %v", cp.name, deprecate, err)
			}
			if os.Getenv("SLARDAR_CAPTURE") != "1" {
				continue
			}
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbyte(%q)\nbool(%v)\n", cp.data, rune(cp.kind), deprecate)
			sum := sha256.Sum256([]byte(seed))
			path := filepath.Join("..", "..", "mysql", "wire", "testdata", "fuzz", "FuzzRelay", fmt.Sprintf("capture-%x", sum[:6]))
			if err := os.WriteFile(path, []byte(seed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// captureConn is a raw client connection whose server bytes are recorded.
type captureConn struct {
	nc  net.Conn
	rec bytes.Buffer
	r   *bufio.Reader
	w   *bufio.Writer
}

func captureLogin(t *testing.T, addr string, deprecate bool) *captureConn {
	t.Helper()
	cc := &captureConn{nc: rawLoginCaps(t, addr, deprecate)}
	cc.r = bufio.NewReader(io.TeeReader(cc.nc, &cc.rec))
	cc.w = bufio.NewWriter(cc.nc)
	return cc
}

// exchange sends a command and returns the server's bytes of its whole response.
func (c *captureConn) exchange(t *testing.T, cmd []byte, kind wire.Kind, deprecate bool) []byte {
	t.Helper()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	wire.WritePayload(c.w, 0, cmd)
	c.w.Flush()
	c.r.Reset(io.TeeReader(c.nc, &c.rec))
	c.rec.Reset()
	rl := wire.Relay{From: c.r, DeprecateEOF: deprecate, SessionTrack: true, LocalInfile: func() error {
		wire.WritePayload(c.w, 2, nil) // an empty file
		return c.w.Flush()
	}, To: bufio.NewWriter(io.Discard)}
	if _, err := rl.Relay(kind); err != nil {
		t.Fatalf("%q: %v", cmd, err)
	}
	return append([]byte(nil), c.rec.Bytes()[:c.rec.Len()-c.r.Buffered()]...)
}

// exchangeCursor is exchange for an execute that opens a cursor.
func (c *captureConn) exchangeCursor(t *testing.T, cmd []byte, deprecate bool) []byte {
	t.Helper()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	wire.WritePayload(c.w, 0, cmd)
	c.w.Flush()
	c.r.Reset(io.TeeReader(c.nc, &c.rec))
	c.rec.Reset()
	rl := wire.Relay{From: c.r, DeprecateEOF: deprecate, SessionTrack: true, Cursor: true, To: bufio.NewWriter(io.Discard)}
	if _, err := rl.Relay(wire.Results); err != nil {
		t.Fatalf("execute: %v", err)
	}
	return append([]byte(nil), c.rec.Bytes()[:c.rec.Len()-c.r.Buffered()]...)
}

// rawLoginCaps logs in with mysql_native_password, with or without CLIENT_DEPRECATE_EOF, and
// session tracking, multi-statements and LOCAL INFILE, and returns the bare connection.
func rawLoginCaps(t *testing.T, addr string, deprecate bool) net.Conn {
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
	v := bytes.IndexByte(p[1:], 0) + 2
	salt := append(append([]byte(nil), p[v+4:v+12]...), p[v+31:v+43]...)
	caps := gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH | gomysql.CLIENT_CONNECT_WITH_DB |
		gomysql.CLIENT_TRANSACTIONS | gomysql.CLIENT_MULTI_RESULTS | gomysql.CLIENT_MULTI_STATEMENTS | gomysql.CLIENT_PS_MULTI_RESULTS |
		gomysql.CLIENT_LOCAL_FILES | gomysql.CLIENT_SESSION_TRACK
	if deprecate {
		caps |= gomysql.CLIENT_DEPRECATE_EOF
	}
	resp := binary.LittleEndian.AppendUint32(nil, caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	resp = append(resp, 45)
	resp = append(resp, make([]byte, 23)...)
	auth := gomysql.CalcNativePassword(salt, []byte(testserver.Password))
	resp = append(append(resp, testserver.User...), 0, byte(len(auth)))
	resp = append(append(resp, auth...), testserver.Database...)
	resp = append(append(resp, 0), "mysql_native_password\x00"...)
	c.WritePayload(1, resp)
	c.W.Flush()
	if p, _, err = c.ReadPayload(1 << 16); err != nil || p[0] != 0 {
		t.Fatalf("login: %q %v", p, err)
	}
	nc.SetDeadline(time.Time{})
	return nc
}
