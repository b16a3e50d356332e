package script

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/l4"
)

// conn returns the proxy side of a real loopback connection (as a hook sees it) and the client.
func conn(t *testing.T) (*l4.Conn, net.Conn) {
	t.Helper()
	client, server := testutil.Pair(t)
	return &l4.Conn{Client: server, Port: "7000", Upstream: "7000", HashKey: "127.0.0.1", Start: time.Now(), Status: l4.StatusOK}, client
}

func newRuntime(t *testing.T) *Runtime {
	t.Helper()
	rt := &Runtime{Code: &Code{}, Dicts: &Dicts{}}
	rt.SetLimits(Limits{Timeout: 500 * time.Millisecond})
	rt.Dicts.Define("store", 1<<20)
	return rt
}

func load(t *testing.T, rt *Runtime, name, src string) {
	t.Helper()
	if err := rt.Code.Load(name, []byte(src)); err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
}

// content runs a content script against a fresh connection and returns what the client got.
func content(t *testing.T, rt *Runtime, src string, input string) (string, error) {
	t.Helper()
	load(t, rt, "script.content7000", src)
	return serve(t, rt, input)
}

// serve runs the installed content script against a fresh connection.
func serve(t *testing.T, rt *Runtime, input string) (string, error) {
	t.Helper()
	cx, client := conn(t)
	client.Write([]byte(input))
	served, err := rt.Content(context.Background(), cx)
	if !served {
		t.Fatal("content script did not serve")
	}
	rt.Log(cx)
	cx.Client.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(client)
	return string(out), err
}

func TestCodeLifecycle(t *testing.T) {
	c := &Code{}
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{name: "install before stage", do: func() error { return c.Install("m") }, want: ErrNotStaged},
		{name: "stage", do: func() error { return c.Stage("m", []byte("return 1")) }},
		{name: "stage the same again", do: func() error { return c.Stage("m", []byte("return 1")) }, want: ErrAlreadyStaged},
		{name: "install", do: func() error { return c.Install("m") }},
		{name: "install again", do: func() error { return c.Install("m") }, want: ErrAlreadyLoaded},
		{name: "load identical", do: func() error { return c.Load("m", []byte("return 1")) }, want: ErrAlreadyStaged},
		{name: "does not compile", do: func() error { return c.Stage("m", []byte("x = = 1")) }, want: "compiling m: m line:1(column:5) near '='"},
	}
	for _, tt := range tests {
		err := tt.do()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tt.want)) {
			t.Fatalf("%s: %v; want %q", tt.name, err, tt.want)
		}
	}
	// Staging a new version changes nothing that runs.
	if err := c.Stage("m", []byte("return 2")); err != nil {
		t.Fatal(err)
	}
	if m := c.Lookup("m"); string(m.Source) != "return 1" {
		t.Fatalf("staging replaced the installed code: %s", m.Source)
	}
	info := c.Info()
	if info.GlobalVersion != 1 || len(info.Modules) != 1 || info.Modules[0].Version != Version([]byte("return 1")) {
		t.Fatalf("info %+v", info)
	}
	c.Delete("m")
	c.Delete("never-existed")
	if c.Lookup("m") != nil || c.GlobalVersion() != 3 {
		t.Fatalf("after delete: %v %d", c.Lookup("m"), c.GlobalVersion())
	}
	if got := c.Get("m"); got != (struct{}{}) {
		t.Fatalf("get of an uninstalled module: %#v", got)
	}
}

func TestNgxAPI(t *testing.T) {
	rt := newRuntime(t)
	load(t, rt, "mod.util", `local M = {} function M.twice(x) return x * 2 end return M`)
	out, err := content(t, rt, `
local cjson = require "cjson"
local util = require "mod.util"
local sock = ngx.req.socket()
local peeked = sock:peek(3)
local line = sock:receive()
local four = sock:receive(4)
local d = ngx.shared.store
d:set("k", 10, 0.05)
local ok, err = d:add("k", 1)
d:incr("n", 1, 41)
ngx.print("peek=", peeked, " line=", line, " four=", four, " add=", tostring(ok), ":", err)
ngx.say(" n=", d:get("n"), " twice=", util.twice(21), " port=", tostring(tonumber(ngx.var.server_port) > 1024), " ip=", ngx.var.remote_addr)
ngx.say(cjson.encode({a = {1, 2}, b = "x/y", c = cjson.null, e = {}}))
local t = cjson.decode('{"x":[1,"two",null],"y":true}')
ngx.say(t.x[2], " ", tostring(t.y), " ", tostring(t.x[3] == cjson.null))
ngx.say(ngx.md5("x"), " ", ngx.decode_base64(ngx.encode_base64("hi")), " ", type(ngx.now()), " ", #ngx.localtime())
ngx.sleep(0.06)
ngx.say("expired=", tostring(d:get("k")))
`, "GET /a\r\nabcdrest")
	if err != nil {
		t.Fatal(err)
	}
	want := "peek=GET line=GET /a four=abcd add=false:exists n=42 twice=42 port=true ip=127.0.0.1\n" +
		`{"a":[1,2],"b":"x\/y","c":null,"e":{}}` + "\n" +
		"two true true\n" +
		"9dd4e461268c8034f5c8564e155c67a6 hi number 19\n" +
		"expired=nil\n"
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

// TestCtxAcrossPhases: ngx.ctx is per connection and carries from preread to log; log sees
// the connection's facts; a preread may choose the upstream and hash key.
func TestCtxAcrossPhases(t *testing.T) {
	rt := newRuntime(t)
	load(t, rt, "script.preread7000", `ngx.ctx.seen = "preread"; ngx.var.upstream = "other"; ngx.var.hash_key = "k1"`)
	load(t, rt, "script.log7000", `ngx.shared.store:set("log", ngx.ctx.seen .. " " .. ngx.var.status .. " " .. ngx.var.bytes_sent .. " " .. ngx.var.upstream_addr)`)
	cx, _ := conn(t)
	if err := rt.Preread(context.Background(), cx); err != nil {
		t.Fatal(err)
	}
	if cx.Upstream != "other" || cx.HashKey != "k1" {
		t.Fatalf("preread did not choose: %q %q", cx.Upstream, cx.HashKey)
	}
	cx.BytesOut, cx.Server = 123, "10.0.0.1:3306"
	rt.Log(cx)
	L := lua.NewState()
	defer L.Close()
	d := rt.Dicts.Get("store")
	if it := d.lookup("log", time.Now()); it == nil || it.value.String() != "preread 200 123 10.0.0.1:3306" {
		t.Fatalf("log hook saw %v", it)
	}
	// Another connection has a fresh ngx.ctx.
	load(t, rt, "script.preread7000", `if ngx.ctx.seen then ngx.exit(5) end`)
	cx2, _ := conn(t)
	if err := rt.Preread(context.Background(), cx2); err != nil {
		t.Fatalf("ngx.ctx leaked across connections: %v", err)
	}
}

func TestPrereadExit(t *testing.T) {
	rt := newRuntime(t)
	load(t, rt, "script.preread7000", `ngx.exit(1)`)
	cx, _ := conn(t)
	err := rt.Preread(context.Background(), cx)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Code != 1 || cx.Status != 1 {
		t.Fatalf("got %v, status %d", err, cx.Status)
	}
	load(t, rt, "script.preread7000", `ngx.exit(ngx.OK)`)
	cx, _ = conn(t)
	if err := rt.Preread(context.Background(), cx); err != nil {
		t.Fatalf("ngx.exit(ngx.OK) must go on: %v", err)
	}
}

func TestSandbox(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "os", src: `os.execute("true")`, want: "attempt to index a non-table object(nil) with key 'execute'"},
		{name: "io", src: `io.open("/etc/passwd")`, want: "attempt to index a non-table object(nil) with key 'open'"},
		{name: "require debug", src: `require "debug"`, want: "module debug not found"},
		{name: "require os", src: `require "os"`, want: "module os not found"},
		{name: "dofile", src: `dofile("/etc/passwd")`, want: "attempt to call a non-function object"},
		{name: "loadfile", src: `loadfile("/etc/passwd")`, want: "attempt to call a non-function object"},
		{name: "endless loop", src: `while true do end`, want: ErrTimeout.Error()},
		{name: "string bomb", src: `local s = string.rep("x", 1e9)`, want: "string.rep: result of 1000000000 bytes is over the limit"},
		{name: "runtime error has the line", src: "local x = 1\nlocal y = nil + x", want: "script.content7000:2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRuntime(t)
			start := time.Now()
			_, err := content(t, rt, tt.src, "")
			var se *ScriptError
			if !errors.As(err, &se) || se.Name != "script.content7000" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want a script error with %q", err, tt.want)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}
}

// TestTimeBudgetExcludesSleep: sleeping longer than the budget is fine; computing is not.
func TestTimeBudgetExcludesSleep(t *testing.T) {
	rt := newRuntime(t)
	rt.SetLimits(Limits{Timeout: 100 * time.Millisecond})
	if out, err := content(t, rt, `ngx.sleep(0.3) ngx.say("woke")`, ""); err != nil || out != "woke\n" {
		t.Fatalf("sleep: %q %v", out, err)
	}
}

func TestMemoryGuard(t *testing.T) {
	rt := newRuntime(t)
	rt.SetLimits(Limits{Timeout: 30 * time.Second, MaxHeap: 1}) // any heap is over: the first sample stops the script
	_, err := content(t, rt, `local t = {} for i = 1, 1e9 do t[i] = {i} end`, "")
	if !errors.Is(err, ErrMemory) {
		t.Fatalf("got %v; want the memory guard", err)
	}
}

// TestLimitReq is the talk's leaky bucket: rate 1/s, burst 3. Commits at the same instant are
// delayed 0, 1, 2, 3 seconds; the fifth is rejected.
func TestLimitReq(t *testing.T) {
	rt := newRuntime(t)
	out, err := content(t, rt, `
local limit_req = require "resty.limit.req"
local lim = limit_req.new("store", 1, 3)
for i = 1, 5 do
  local delay, err = lim.incoming("10.0.0.1", true)   -- the talk's call style
  ngx.say(i, " ", tostring(delay), " ", tostring(err))
end
local lim2 = limit_req.new("store", 1, 3)
ngx.say("method ", tostring((lim2:incoming("10.0.0.2", true))))
`, "")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, want := range []string{"1 0 0", "2 1 1", "3 2 2", "4 3 3", "5 nil rejected", "method 0"} {
		// delays come back as floats; the elapsed milliseconds between calls make them slightly smaller
		got := lines[i]
		if !strings.HasPrefix(got, want[:2]) || (want != got && !approx(got, want)) {
			t.Fatalf("line %d: %q; want %q\n%s", i+1, got, want, out)
		}
	}
}

// approx compares "i delay excess" lines allowing for the milliseconds that pass between calls.
func approx(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != 3 || len(w) != 3 || g[0] != w[0] {
		return false
	}
	for k := 1; k < 3; k++ {
		var a, b float64
		if _, err := fmtSscan(g[k], &a); err != nil {
			return false
		}
		if _, err := fmtSscan(w[k], &b); err != nil {
			return false
		}
		if a > b || b-a > 0.05 {
			return false
		}
	}
	return true
}

func TestLimitConnAndCount(t *testing.T) {
	rt := newRuntime(t)
	out, err := content(t, rt, `
local conn = require("resty.limit.conn").new("store", 2, 1, 0.5)
for i = 1, 4 do local d, e = conn:incoming("c", true) ngx.say("conn ", i, " ", tostring(d), " ", tostring(e)) end
ngx.say("leaving ", conn:leaving("c", 0.1))
local count = require("resty.limit.count").new("store", 2, 60)
for i = 1, 3 do local d, e = count:incoming("k", true) ngx.say("count ", i, " ", tostring(d), " ", tostring(e)) end
`, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "conn 1 0 1\nconn 2 0 2\nconn 3 0.5 3\nconn 4 nil rejected\nleaving 2\ncount 1 0 1\ncount 2 0 0\ncount 3 nil rejected\n"
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestReceivePatterns(t *testing.T) {
	tests := []struct {
		name    string
		pattern lua.LValue
		input   string
		data    string
		err     string
		partial string
	}{
		{name: "line strips CR", pattern: lua.LNil, input: "a\rb\r\nrest", data: "ab"},
		{name: "line closed", pattern: lua.LString("*l"), input: "abc", err: "closed", partial: "abc"},
		{name: "count", pattern: lua.LNumber(3), input: "abcdef", data: "abc"},
		{name: "count as string", pattern: lua.LString("2"), input: "abc", data: "ab"},
		{name: "count closed", pattern: lua.LNumber(5), input: "abc", err: "closed", partial: "abc"},
		{name: "all", pattern: lua.LString("*a"), input: "abc\ndef", data: "abc\ndef"},
		{name: "over the limit", pattern: lua.LNumber(100), input: "", err: "pattern over the size limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			data, msg, partial := receive(bufio.NewReader(strings.NewReader(tt.input)), p, 64)
			if data != tt.data || msg != tt.err || partial != tt.partial {
				t.Fatalf("got %q %q %q; want %q %q %q", data, msg, partial, tt.data, tt.err, tt.partial)
			}
		})
	}
	if _, err := parsePattern(lua.LString("*x")); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

// FuzzReceive drives receive patterns over arbitrary input: never more than the limit, and the
// data returned is always a prefix-derived piece of the input.
func FuzzReceive(f *testing.F) {
	for _, s := range []string{"*l", "*a", "3", "0", "-1", "*"} {
		f.Add(s, "line\r\nmore data")
	}
	f.Fuzz(func(t *testing.T, pat, input string) {
		p, err := parsePattern(lua.LString(pat))
		if err != nil {
			return
		}
		data, msg, partial := receive(bufio.NewReader(strings.NewReader(input)), p, 256)
		if len(data) > 256 || len(partial) > 257+4096 {
			t.Fatalf("over the limit: %d %d", len(data), len(partial))
		}
		if msg == "" && p.kind == 'n' && len(data) != p.n {
			t.Fatalf("receive(%d) returned %d bytes", p.n, len(data))
		}
		if msg == "" && p.kind == 'a' && data != input {
			t.Fatalf("*a returned %q of %q", data, input)
		}
	})
}

// FuzzStage feeds arbitrary source to the code topic: refused with a CodeError or staged.
func FuzzStage(f *testing.F) {
	for _, s := range []string{`ngx.exit(1)`, `ngx.say("Hello, Lua!")`, `local x = = 1`, "\x1bLua", `return {`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c := &Code{}
		err := c.Load("script.preread1", src)
		var ce *CodeError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("%T %v", err, err)
		}
	})
}

// TestLimitReqConcurrent: concurrent connections from one address are admitted exactly as the
// bucket allows, whatever the interleaving (the update is atomic).
func TestLimitReqConcurrent(t *testing.T) {
	rt := newRuntime(t)
	load(t, rt, "script.preread7000", `local lim = require("resty.limit.req").new("store", 1, 3)
if not lim:incoming("same-key", true) then ngx.exit(1) end`)
	var conns []*l4.Conn
	for range 20 {
		cx, _ := conn(t)
		conns = append(conns, cx)
	}
	results := make(chan error, len(conns))
	for _, cx := range conns {
		go func() { results <- rt.Preread(context.Background(), cx) }()
	}
	admitted := 0
	for range conns {
		if <-results == nil {
			admitted++
		}
	}
	if admitted != 4 {
		t.Fatalf("admitted %d of 20; want 4 (burst 3 + 1)", admitted)
	}
}

// TestCosocket: ngx.socket.tcp talks to a real server: connect, send, receive by line and by
// count, settimeout, close; a refused connect returns nil and the error.
func TestCosocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("+" + strings.ToUpper(line) + "12345"))
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	rt := newRuntime(t)
	out, err := content(t, rt, `
local sock = ngx.socket.tcp()
sock:settimeout(2000)
assert(sock:connect("127.0.0.1", `+port+`))
sock:send("ping\n")
local line = sock:receive("*l")
local five = sock:receive(5)
local rest, err = sock:receive(1)
ngx.say(line, " ", five, " ", tostring(rest), " ", err)
sock:close()
local bad = ngx.socket.tcp()
local ok, err = bad:connect("127.0.0.1", `+closedPort+`)
ngx.say(tostring(ok), " ", err)
`, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "+PING 12345 nil closed\nnil connection refused\n"; out != want {
		t.Fatalf("got %q; want %q", out, want)
	}
}
