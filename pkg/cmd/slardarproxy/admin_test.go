package slardarproxy

import (
	"bytes"
	"encoding/hex"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
)

// TestTalkExamplesWithNetcat runs the talk's admin examples through the real nc.
func TestTalkExamplesWithNetcat(t *testing.T) {
	d := startDaemon(t, nil)
	host, port, _ := net.SplitHostPort(d.AdminAddr())
	nc := func(input string) []byte {
		t.Helper()
		cmd := exec.Command("nc", "-q1", host, port)
		cmd.Stdin = strings.NewReader(input)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("nc: %v", err)
		}
		return out
	}
	// printf 'PUT upstream 3131\n\x00\x00\x00\x3c{"cluster":...}' | nc 127.0.0.1 1895 | xxd
	out := nc("PUT upstream 3131\n\x00\x00\x00\x3c" + `{"cluster":[{"servers":[{"host":"127.0.0.1","port":3306}]}]}`)
	if got := hex.EncodeToString(out); got != "00000006000000004f4b" {
		t.Fatalf("PUT upstream 3131 → %s", got)
	}
	// echo -ne 'get upstream info\n' | nc 127.0.0.1 1895
	out = nc("get upstream info\n")
	if len(out) < 8 || !bytes.Equal(out[4:8], []byte{0, 0, 0, 1}) || !bytes.Contains(out, []byte(`"3131":{"cluster":[{"servers":[{"host":"127.0.0.1","port":3306,"weight":1,"max_fails":0,"fail_timeout":10}]}]}`)) {
		t.Fatalf("get upstream info → %q", out)
	}
	// The talk's LOAD code example, with a command pipelined after its body.
	out = nc("LOAD code script.preread3151\n\x00\x00\x00\x0bngx.exit(1)GET code info\n")
	r := bytes.NewReader(out)
	first, err1 := admin.ReadReply(r, 1<<20)
	second, err2 := admin.ReadReply(r, 1<<20)
	if err1 != nil || err2 != nil || first.Type != admin.TypeOK || !bytes.Contains(second.Data, []byte(`"name":"script.preread3151","version":"50e9bb007a4a0b3dbd22712f5453a5f1"`)) {
		t.Fatalf("LOAD code then GET: %+v %v / %+v %v", first, err1, second, err2)
	}
}

// TestHostileAdminInputLosesNothing throws bad input at the real daemon's admin port: each gets
// an ERROR or a clean close, other clients are served meanwhile, and the configured upstream and
// the data path are untouched.
func TestHostileAdminInputLosesNothing(t *testing.T) {
	d := startDaemon(t, nil)
	putUpstream(t, d, twoServers(""))
	before := adminDo(t, d, "GET", "upstream", "info", nil).Data

	// A slow client holding a half-written command open the whole time.
	slow, err := net.Dial("tcp", d.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("PUT upstream 3131\n\x00\x00\x10\x00{\"cluster\""))

	hostile := map[string][]byte{
		"huge length":     []byte("PUT upstream 3131\n\x7f\xff\xff\xff"),
		"zero length":     []byte("PUT upstream 3131\n\x00\x00\x00\x00"),
		"binary garbage":  {0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, '\n', 0x01, 0x02},
		"no newline":      []byte("GET upstream info"),
		"long line":       bytes.Repeat([]byte("A"), 100<<10),
		"invalid json":    admin.AppendRequest(nil, "PUT", "upstream", "3131", []byte("{nope")),
		"invalid servers": admin.AppendRequest(nil, "PUT", "upstream", "3131", []byte(`{"servers":[{"host":"x"}]}`)),
		"stray body":      append([]byte("PUT nothing x\n"), admin.AppendRequest(nil, "", "", "", nil)...),
	}
	for name, raw := range hostile {
		t.Run(name, func(t *testing.T) {
			out := testutil.RawExchange(t, d.AdminAddr(), raw)
			r := bytes.NewReader(out)
			for r.Len() > 0 {
				rep, err := admin.ReadReply(r, 1<<20)
				if err != nil {
					t.Fatalf("malformed reply bytes %x: %v", out, err)
				}
				if rep.Type != admin.TypeError {
					t.Fatalf("hostile input answered %d %q", rep.Type, rep.Data)
				}
			}
		})
	}
	if after := adminDo(t, d, "GET", "upstream", "info", nil).Data; !bytes.Equal(before, after) {
		t.Fatalf("config changed:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := mysqlPort(t, d.ListenerAddr("3131")); err != nil {
		t.Fatalf("data path after hostile admin input: %v", err)
	}
	slow.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := slow.Read(make([]byte, 1)); n != 0 {
		t.Fatal("the slow client got a reply to a half-sent command")
	}
}

// The daemon's commands are the protocol's command table, so slardarctl knows which carry a body.
func TestCommandsAreKnown(t *testing.T) {
	d := startDaemon(t, nil)
	specs := d.Mux.Specs()
	if len(specs) < 9 {
		t.Fatalf("only %d commands registered: %v", len(specs), specs)
	}
	for _, s := range specs {
		if body, known := admin.CarriesBody(s.Method, s.Topic); !known || body != s.Body {
			t.Errorf("%s %s (body %v) is not in admin.Known as served", s.Method, s.Topic, s.Body)
		}
	}
}
