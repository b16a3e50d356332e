package slardarproxy

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/units"
)

func loadCode(t *testing.T, d *Daemon, name, src string) {
	t.Helper()
	if r := adminDo(t, d, "LOAD", "code", name, []byte(src)); r.Type != admin.TypeOK {
		t.Fatalf("LOAD code %s: %s", name, r.Data)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestHelloLua: the talk's content script answers nc.
func TestHelloLua(t *testing.T) {
	d := startDaemon(t, func(c *config.File) {
		c.Listeners = append(c.Listeners, config.Listener{Listen: "127.0.0.1:0", Upstream: "hello"})
	})
	addr := d.ListenerAddr("hello")
	loadCode(t, d, "script.content"+portOf(addr), `ngx.say("Hello, Lua!")`)
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("nc", "-q1", host, port).Output()
	if err != nil || string(out) != "Hello, Lua!\n" {
		t.Fatalf("nc got %q, %v", out, err)
	}
}

// TestPrereadRejectsThenDeleteRestores: the talk's LOAD code script.preread<port> ngx.exit(1),
// sent with printf | nc, makes the mysql client lose its connection; deleting it restores
// access, with no restart in between.
func TestPrereadRejectsThenDeleteRestores(t *testing.T) {
	d := startDaemon(t, nil)
	proxy := d.ListenerAddr("3131")
	putUpstream(t, d, twoServers(""))
	if _, err := mysqlPort(t, proxy); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(d.AdminAddr())
	// printf 'LOAD code script.preread3151\n\x00\x00\x00\x0bngx.exit(1)' | nc 127.0.0.1 1895 | xxd
	cmd := exec.Command("nc", "-q1", host, port)
	cmd.Stdin = strings.NewReader("LOAD code script.preread" + portOf(proxy) + "\n\x00\x00\x00\x0bngx.exit(1)")
	out, err := cmd.Output()
	if err != nil || hex.EncodeToString(out) != "00000006000000004f4b" {
		t.Fatalf("LOAD via nc: %x %v", out, err)
	}
	if _, err := mysqlPort(t, proxy); err == nil || !strings.Contains(err.Error(), "Lost connection") {
		t.Fatalf("mysql through a rejecting preread: %v; want Lost connection", err)
	}
	if r := adminDo(t, d, "DELETE", "code", "script.preread"+portOf(proxy), nil); r.Type != admin.TypeOK {
		t.Fatalf("DELETE code: %s", r.Data)
	}
	if _, err := mysqlPort(t, proxy); err != nil {
		t.Fatalf("after DELETE code: %v", err)
	}
}

// TestTalkLimitReq: the talk's limit_req preread as shipped in examples/lua (rate 1/s, burst 3,
// keyed by remote address).
// Five connections at once: four reach MariaDB after 0, 1, 2 and 3 seconds, the fifth is
// dropped.
func TestTalkLimitReq(t *testing.T) {
	d := startDaemon(t, func(c *config.File) { c.SharedDicts = map[string]units.Size{"stream_limit_req_store": 1 << 20} })
	proxy := d.ListenerAddr("3131")
	putUpstream(t, d, twoServers(""))
	talk, err := os.ReadFile("../../../examples/lua/script.preread3131.lua")
	if err != nil {
		t.Fatal(err)
	}
	loadCode(t, d, "script.preread"+portOf(proxy), string(talk))
	type result struct {
		greeted bool
		after   time.Duration
	}
	results := make([]result, 5)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", proxy)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, _ := c.Read(make([]byte, 64)) // MariaDB speaks first
			results[i] = result{greeted: n > 0, after: time.Since(start)}
		}()
	}
	wg.Wait()
	var delays []time.Duration
	rejected := 0
	for _, r := range results {
		if r.greeted {
			delays = append(delays, r.after)
		} else {
			rejected++
		}
	}
	if rejected != 1 || len(delays) != 4 {
		t.Fatalf("greeted after %v, %d rejected; want 4 greeted, 1 rejected", delays, rejected)
	}
	// Sorted, the k-th greeting comes after about k seconds.
	for k := range delays {
		for j := k + 1; j < len(delays); j++ {
			if delays[j] < delays[k] {
				delays[j], delays[k] = delays[k], delays[j]
			}
		}
	}
	for k, dl := range delays {
		want := time.Duration(k) * time.Second
		if dl < want-50*time.Millisecond || dl > want+900*time.Millisecond {
			t.Fatalf("greeting %d after %v; want about %v (all: %v)", k, dl, want, delays)
		}
	}
}

// TestRunawayScriptIsolated: an endless loop on one port is stopped and reported; the proxy
// keeps serving other ports meanwhile, and the admin port answers.
func TestRunawayScriptIsolated(t *testing.T) {
	d := startDaemon(t, func(c *config.File) {
		c.Listeners = append(c.Listeners, config.Listener{Listen: "127.0.0.1:0", Upstream: "loop"})
		c.Scripts.Timeout = 300 * time.Millisecond
	})
	putUpstream(t, d, twoServers(""))
	loop := d.ListenerAddr("loop")
	loadCode(t, d, "script.content"+portOf(loop), `while true do end`)
	done := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", loop)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		done <- err
	}()
	for range 3 {
		if _, err := mysqlPort(t, d.ListenerAddr("3131")); err != nil {
			t.Fatalf("other port while a script loops: %v", err)
		}
	}
	if err := <-done; err == nil {
		t.Fatal("the looping connection got data")
	}
	if r := adminDo(t, d, "GET", "code", "info", nil); r.Type != admin.TypeMessage {
		t.Fatalf("admin after a runaway script: %s", r.Data)
	}
}

// TestInFlightKeepsItsVersion: a connection finishes with the script version it started with;
// the next connection gets the new one.
func TestInFlightKeepsItsVersion(t *testing.T) {
	d := startDaemon(t, func(c *config.File) {
		c.Listeners = append(c.Listeners, config.Listener{Listen: "127.0.0.1:0", Upstream: "v"})
	})
	addr := d.ListenerAddr("v")
	name := "script.content" + portOf(addr)
	loadCode(t, d, name, `ngx.say("v1 start") ngx.sleep(0.5) ngx.say("v1 end")`)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 9)
	if _, err := first.Read(buf); err != nil || string(buf) != "v1 start\n" {
		t.Fatalf("first: %q %v", buf, err)
	}
	loadCode(t, d, name, `ngx.say("v2")`)
	host, port, _ := net.SplitHostPort(addr)
	if out, _ := exec.Command("nc", "-q1", host, port).Output(); string(out) != "v2\n" {
		t.Fatalf("new connection got %q", out)
	}
	rest := make([]byte, 64)
	n, _ := first.Read(rest)
	if string(rest[:n]) != "v1 end\n" {
		t.Fatalf("in-flight connection got %q", rest[:n])
	}
}

// TestScriptsDir: scripts from the config's directory are loaded at start, and a reload picks
// up changed and removed files; a file that does not compile fails the reload and changes nothing.
func TestScriptsDir(t *testing.T) {
	dir := t.TempDir()
	port, _ := testserver.FreePort()
	dataPort := strconv.Itoa(port)
	addr := "127.0.0.1:" + dataPort
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("script.content"+dataPort+".lua", `ngx.say(require("greeting").text)`)
	write("greeting.lua", `return {text = "hello from the dir"}`)
	cfg := &config.File{Common: config.Common{Admin: config.Admin{Listen: "127.0.0.1:0"}}, Scripts: config.Scripts{Dir: dir},
		Listeners: []config.Listener{{Listen: addr, Upstream: "x"}}}
	d := startDaemonConfig(t, func() (*config.File, error) { return cfg, nil })
	say := func() string {
		out, _ := exec.Command("nc", "-q1", "127.0.0.1", dataPort).Output()
		return string(out)
	}
	if got := say(); got != "hello from the dir\n" {
		t.Fatalf("at start: %q", got)
	}
	write("greeting.lua", `return {text = "changed"}`)
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := say(); got != "changed\n" {
		t.Fatalf("after reload: %q", got)
	}
	write("greeting.lua", `return {`)
	if err := d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "greeting.lua") {
		t.Fatalf("bad file: %v", err)
	}
	if got := say(); got != "changed\n" {
		t.Fatalf("after a failed reload: %q", got)
	}
	os.Remove(filepath.Join(dir, "greeting.lua"))
	os.Remove(filepath.Join(dir, "script.content"+dataPort+".lua"))
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := adminDo(t, d, "GET", "code", "info", nil); !strings.Contains(string(r.Data), `"modules":[]`) {
		t.Fatalf("scripts of removed files still installed: %s", r.Data)
	}
}
