package slardarproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
)

// Faults found by a hostile probe (issue 15), each against the real binary.

// daemonProc is slardar-proxy run as its own process.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	admin  string
	exited chan error
}

// runDaemon starts the built binary through sh, so that limits (ulimit ...) apply to it alone,
// and waits until its admin port answers.
func runDaemon(t *testing.T, limits, config string, args ...string) *daemonProc {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, _ := testserver.FreePort()
	p := &daemonProc{stderr: &testutil.SyncBuffer{}, admin: "127.0.0.1:" + strconv.Itoa(adminPort), exited: make(chan error, 1)}
	if config != "" {
		path := filepath.Join(t.TempDir(), "slardar.yaml")
		writeFile(t, path, config)
		args = append(args, "--config", path)
	}
	script := limits + `; exec "$0" "$@"`
	if limits == "" {
		script = `exec "$0" "$@"`
	}
	p.cmd = exec.Command("bash", append([]string{"-c", script, bin, "--admin-listen", p.admin}, args...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	testutil.WaitFor(t, "admin port up", 10*time.Second, func() bool {
		_, err := p.do("GET", "upstream", "info", nil)
		var re *admin.ReplyError
		return err == nil || errors.As(err, &re) // a reply, even "authentication required"
	})
	// The admin port opens before the data listeners: the start line follows them all.
	testutil.WaitFor(t, "the start line (every listener bound)", 10*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "slardar-proxy started")
	})
	return p
}

// do sends one admin command with a deadline.
func (p *daemonProc) do(method, topic, name string, body []byte) (admin.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return admin.Do(ctx, p.admin, "", method, topic, name, body)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// openConns opens n connections to addr (as many as the kernel completes) and returns them.
func openConns(addr string, n int) []net.Conn {
	var out []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		out = append(out, c)
	}
	return out
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// 1. A spike of connections beyond the fd limit does not kill the admin port (nor the data
// port): accepts fail with EMFILE, are logged and retried, and both ports serve afterwards.
func TestAdminSurvivesFDExhaustion(t *testing.T) {
	dataPort, _ := testserver.FreePort()
	backend := testutil.Greeter("A")
	host, port, _ := net.SplitHostPort(backend)
	adminConf := "admin: {max_conns: 1000}"
	if os.Getenv("SLARDAR_PROXY_BIN") != "" {
		adminConf = "" // an older build may not know the key
	}
	p := runDaemon(t, "ulimit -n 200", fmt.Sprintf(`
%s
listeners: [{listen: "127.0.0.1:%d", upstream: g}]
upstreams:
  g: {enable: false, servers: [{host: %s, port: %s}]}
`, adminConf, dataPort, host, port))
	if os.Getenv("SLARDAR_PROXY_BIN") == "" {
		// The start line is written after the admin port opens: wait for it, not for the port.
		testutil.WaitFor(t, "the start line reporting max_open_files=200", 5*time.Second, func() bool {
			return strings.Contains(p.stderr.String(), "max_open_files=200")
		})
	}
	data := "127.0.0.1:" + strconv.Itoa(dataPort)
	for _, target := range []string{p.admin, data} {
		conns := openConns(target, 250)
		if len(conns) < 220 {
			t.Fatalf("only %d connections to %s opened", len(conns), target)
		}
		testutil.WaitFor(t, "an accept failing with EMFILE", 5*time.Second, func() bool {
			return strings.Contains(p.stderr.String(), "too many open files")
		})
		closeAll(conns)
		testutil.WaitFor(t, "the admin port to answer after the spike on "+target, 10*time.Second, func() bool {
			r, err := p.do("GET", "upstream", "info", nil)
			return err == nil && strings.Contains(string(r.Data), `"g":`)
		})
		testutil.WaitFor(t, "the data port to serve after the spike on "+target, 10*time.Second, func() bool {
			return testutil.Greeting(data) == "A"
		})
	}
}

// 1. Idle admin clients cannot use up the port: past admin.max_conns a connection gets an
// ERROR reply and is closed, and a slot frees when a client leaves.
func TestAdminConnectionCap(t *testing.T) {
	p := runDaemon(t, "", "admin: {max_conns: 5}\n")
	var idle []net.Conn
	testutil.WaitFor(t, "five idle admin connections held", 5*time.Second, func() bool {
		closeAll(idle) // a connection of runDaemon's may still have held a slot: try again
		idle = openConns(p.admin, 5)
		time.Sleep(100 * time.Millisecond)
		for _, c := range idle {
			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			if n, _ := c.Read(make([]byte, 1)); n > 0 {
				return false // refused
			}
		}
		return true
	})
	defer closeAll(idle)
	_, err := p.do("GET", "upstream", "info", nil)
	var re *admin.ReplyError
	if err == nil || !strings.Contains(err.Error(), "too many admin connections (limit 5)") {
		t.Fatalf("sixth connection: %v (%T %v)\n%s", err, err, re, p.stderr.String())
	}
	idle[0].Close()
	testutil.WaitFor(t, "a slot to free", 5*time.Second, func() bool { _, err := p.do("GET", "upstream", "info", nil); return err == nil })
}

// 2. A SIGHUP whose config cannot be applied (a new listener on a busy port) changes nothing:
// the old listeners serve, upstream changes of the same file are not live. An upstream set over
// the admin protocol survives a SIGHUP of an unchanged file; a changed file definition wins.
func TestReloadAllOrNothing(t *testing.T) {
	a, b, c := testutil.Greeter("A"), testutil.Greeter("B"), testutil.Greeter("C")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p1, _ := testserver.FreePort()
	p2, _ := testserver.FreePort()
	l1, l2 := "127.0.0.1:"+strconv.Itoa(p1), "127.0.0.1:"+strconv.Itoa(p2)
	conf := func(listeners []string, g, h string) string {
		s := "listeners:\n"
		for _, l := range listeners {
			s += fmt.Sprintf("  - {listen: %q, upstream: %s}\n", l, map[string]string{l1: "g", l2: "h"}[l])
		}
		hostPort := func(addr string) string {
			host, port, _ := net.SplitHostPort(addr)
			return fmt.Sprintf("{host: %s, port: %s}", host, port)
		}
		return s + fmt.Sprintf("upstreams:\n  g: {enable: false, servers: [%s]}\n  h: {enable: false, servers: [%s]}\n", hostPort(g), hostPort(h))
	}
	path := filepath.Join(t.TempDir(), "slardar.yaml")
	writeFile(t, path, conf([]string{l1, l2}, a, b))
	p := runDaemon(t, "", "", "--config", path)
	testutil.WaitFor(t, "listeners up", 5*time.Second, func() bool { return testutil.Greeting(l1) == "A" && testutil.Greeting(l2) == "B" })

	// l2 leaves, g moves to C, and a listener on a busy port arrives: nothing may change.
	broken := conf([]string{l1}, c, b) + "  x: {enable: false, servers: [{host: 127.0.0.1, port: 9}]}\n" +
		"  # busy\n" // the listener below is appended to the listeners list
	broken = strings.Replace(broken, "upstreams:\n", fmt.Sprintf("  - {listen: %q, upstream: x}\nupstreams:\n", busy.Addr().String()), 1)
	writeFile(t, path, broken)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "the failed reload to be logged", 5*time.Second, func() bool { return strings.Contains(p.stderr.String(), "config not reloaded") })
	if got := testutil.Greeting(l2); got != "B" {
		t.Fatalf("a failed reload closed a listener: %q", got)
	}
	if got := testutil.Greeting(l1); got != "A" {
		t.Fatalf("a failed reload applied an upstream change: %q", got)
	}

	// Back to the first file; an admin PUT moves g to C; a SIGHUP of the unchanged file keeps it.
	writeFile(t, path, conf([]string{l1, l2}, a, b))
	host, port, _ := net.SplitHostPort(c)
	if _, err := p.do("PUT", "upstream", "g", []byte(fmt.Sprintf(`{"enable":false,"cluster":[{"servers":[{"host":%q,"port":%s}]}]}`, host, port))); err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(p.stderr.String(), "config reloaded")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "the reload", 5*time.Second, func() bool { return strings.Count(p.stderr.String(), "config reloaded") > reloads })
	if got := testutil.Greeting(l1); got != "C" {
		t.Fatalf("a reload of an unchanged file reverted an admin PUT: %q", got)
	}
	// The file changes g (to B): its definition wins.
	writeFile(t, path, conf([]string{l1, l2}, b, b))
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "the changed file definition to apply", 5*time.Second, func() bool { return testutil.Greeting(l1) == "B" })
}

// load installs a script on a daemon process over its admin port.
func (p *daemonProc) load(t *testing.T, name, src string) {
	t.Helper()
	if _, err := p.do("LOAD", "code", name, []byte(src)); err != nil {
		t.Fatalf("LOAD code %s: %v", name, err)
	}
}

// 3. One port's Lua cannot switch off another port's access control, and it stays so after the
// bad script is deleted and the good one reloaded.
func TestLuaCannotCrossPorts(t *testing.T) {
	backend := testutil.Greeter("A")
	host, port, _ := net.SplitHostPort(backend)
	p1, _ := testserver.FreePort()
	p2, _ := testserver.FreePort()
	attacker, guarded := "127.0.0.1:"+strconv.Itoa(p1), "127.0.0.1:"+strconv.Itoa(p2)
	p := runDaemon(t, "", fmt.Sprintf(`
listeners: [{listen: %q, upstream: a}, {listen: %q, upstream: g}]
upstreams:
  a: {enable: false, servers: [{host: %s, port: %s}]}
  g: {enable: false, servers: [{host: %s, port: %s}]}
`, attacker, guarded, host, port, host, port))
	p.load(t, "script.preread"+strconv.Itoa(p2), `ngx.exit(1)`)
	p.load(t, "script.content"+strconv.Itoa(p1), `ngx.exit = function() end; string.rep = nil; ngx.say("pwned")`)
	check := func(when string) {
		for range 8 {
			testutil.Greeting(attacker)
			if got := testutil.Greeting(guarded); got != "" {
				t.Fatalf("%s: a connection to the port whose preread is ngx.exit(1) got %q", when, got)
			}
		}
	}
	check("with the bad script")
	p.do("DELETE", "code", "script.content"+strconv.Itoa(p1), nil)
	p.do("DELETE", "code", "script.preread"+strconv.Itoa(p2), nil)
	p.load(t, "script.preread"+strconv.Itoa(p2), `ngx.exit(1)`)
	check("after the bad script was deleted and the good one reloaded")
}

// 4. Lua memory and time are bounded without configuration: a table of big strings, a string
// doubled by .., and an endless tail call are stopped (by the default heap guard and the time
// budget), under a 3 GB address-space limit the daemon survives them, other ports serve, and
// the log stays readable (no 700 MB traceback).
//
// The memory bombs run in a daemon whose time budget is long, so that they are stopped by the
// heap guard however slowly a loaded machine runs them (with the default 1 s budget, a
// machine busy enough stops them by time first); the endless call runs in one with the default
// budget.
func TestLuaBombsAreBounded(t *testing.T) {
	backend := testutil.Greeter("A")
	host, port, _ := net.SplitHostPort(backend)
	run := func(scripts string, bombs []string, why ...string) {
		t.Helper()
		ports := make([]int, len(bombs)+1)
		for i := range ports {
			ports[i], _ = testserver.FreePort()
		}
		conf := scripts + "listeners:\n"
		for i, pt := range ports {
			conf += fmt.Sprintf("  - {listen: \"127.0.0.1:%d\", upstream: u%d}\n", pt, i)
		}
		guarded := len(bombs)
		conf += fmt.Sprintf("upstreams:\n  u%d: {enable: false, servers: [{host: %s, port: %s}]}\n", guarded, host, port)
		p := runDaemon(t, "ulimit -v 3000000", conf)
		for i, src := range bombs {
			p.load(t, "script.content"+strconv.Itoa(ports[i]), src)
		}
		for i, src := range bombs {
			start := time.Now()
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ports[i]))
			if err != nil {
				t.Fatalf("%s: %v\n%s", src, err, p.stderr.String())
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
			if took := time.Since(start); err == nil || took > 10*time.Second {
				t.Fatalf("%q: the connection ended after %v with %v", src, took, err)
			}
			select {
			case err := <-p.exited:
				t.Fatalf("the daemon died running %q: %v\n%s", src, err, p.stderr.String())
			default:
			}
			if got := testutil.Greeting("127.0.0.1:" + strconv.Itoa(ports[guarded])); got != "A" {
				t.Fatalf("after %q the other port got %q\n%s", src, got, p.stderr.String())
			}
		}
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if len(line) > 8<<10 {
				t.Fatalf("a log line of %d bytes: %.300s...", len(line), line)
			}
		}
		// The access line follows the close the client saw: wait for it.
		for _, w := range why {
			testutil.WaitFor(t, "the log to say "+w, 5*time.Second, func() bool { return strings.Contains(p.stderr.String(), w) })
		}
	}
	run("scripts: {timeout: 60s}\n", []string{
		`local t = {} while true do t[#t+1] = string.rep('x', 1e6) end`,
		`local s = 'x' while true do s = s .. s end`,
	}, "memory limit exceeded")
	run("", []string{`local function f(n) return f(n + 1) end f(1)`}, "time budget exceeded")
}

// 6. A script waiting (ngx.sleep, a socket read) ends when its client closes or the daemon
// drains, instead of holding the connection in CLOSE-WAIT; a log hook blocked on a socket is
// bounded by scripts.log_timeout.
func TestWaitingScriptsEnd(t *testing.T) {
	silent := testutil.Silent()
	host, port, _ := net.SplitHostPort(silent)
	p1, _ := testserver.FreePort()
	p2, _ := testserver.FreePort()
	sleeper, logger := "127.0.0.1:"+strconv.Itoa(p1), "127.0.0.1:"+strconv.Itoa(p2)
	p := runDaemon(t, "", fmt.Sprintf(`
proxy: {shutdown_grace: 30s}
scripts: {log_timeout: 1s}
listeners: [{listen: %q, upstream: s}, {listen: %q, upstream: l}]
`, sleeper, logger))
	p.load(t, "script.content"+strconv.Itoa(p1), `ngx.sleep(1e9)`)
	p.load(t, "script.content"+strconv.Itoa(p2), `ngx.say("bye")`)
	p.load(t, "script.log"+strconv.Itoa(p2), fmt.Sprintf(`local s = ngx.socket.tcp(); s:settimeout(1e9)
		s:connect(%q, %s); s:receive("*l")`, host, port))

	c, err := net.Dial("tcp", sleeper)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	c.Close()
	testutil.WaitFor(t, "the sleeping script to end after its client left", 3*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "client closed the connection")
	})

	start := time.Now()
	if got := testutil.Greeting(logger); got != "b" {
		t.Fatalf("content before the log hook: %q", got)
	}
	testutil.WaitFor(t, "the blocked log hook to end", 5*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "script.log"+strconv.Itoa(p2))
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the log hook took %v with log_timeout 1s", took)
	}

	// A sleeping script does not hold the drain for the whole grace period.
	c, err = net.Dial("tcp", sleeper)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the drain took %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("SIGTERM waited for a sleeping script\n%s", p.stderr.String())
	}
}

// statusOf returns a server's entry in GET upstream status.
func (p *daemonProc) statusOf(t *testing.T, upstream, server string) map[string]any {
	t.Helper()
	r, err := p.do("GET", "upstream", "status", nil)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	json.Unmarshal(r.Data, &st)
	var levels [][]map[string]any
	json.Unmarshal(st["cls:"+upstream], &levels)
	for _, l := range levels {
		for _, s := range l {
			if s["server"] == upstream+":"+server {
				return s
			}
		}
	}
	return nil
}

func hostPortJSON(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`{"host":%q,"port":%s}`, host, port)
}

// 8. One slow upstream's heartbeats do not delay another's verdicts: a server killed while
// another upstream's checks hang on a black hole is marked down within a round of its own.
func TestHeartbeatVerdictsPerUpstream(t *testing.T) {
	p := runDaemon(t, "", "checkups: {interval: 200ms}\n")
	fast, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.do("PUT", "upstream", "slow", []byte(`{"timeout":4,"cluster":[{"servers":[`+hostPortJSON(testutil.Blackhole(t))+`]}]}`)); err != nil {
		t.Fatal(err)
	}
	other := testutil.Listen(t) // a second server, so that the killed one is not "protected"
	if _, err := p.do("PUT", "upstream", "fast", []byte(`{"timeout":1,"cluster":[{"servers":[`+hostPortJSON(fast.Addr().String())+`,`+hostPortJSON(other.Addr().String())+`]}]}`)); err != nil {
		t.Fatal(err)
	}
	server := fast.Addr().String()
	testutil.WaitFor(t, "the fast server checked ok", 5*time.Second, func() bool {
		s := p.statusOf(t, "fast", server)
		return s != nil && s["status"] == "ok" && s["lastmodified"] != nil
	})
	time.Sleep(500 * time.Millisecond) // the slow upstream's round is now hanging on its black hole
	fast.Close()
	took := testutil.WaitFor(t, "the killed server marked err", 10*time.Second, func() bool { return p.statusOf(t, "fast", server)["status"] == "err" })
	if took > 2*time.Second {
		t.Fatalf("a killed server was marked down after %v: another upstream's slow round held its verdict", took)
	}
}

// 8. A passive err mark does not survive a PUT that sets max_fails 0 (passive health off).
func TestPassiveMarkClearedByMaxFailsZero(t *testing.T) {
	dead, _ := testserver.FreePort()
	good := testutil.Greeter("A")
	dataPort, _ := testserver.FreePort()
	data := "127.0.0.1:" + strconv.Itoa(dataPort)
	up := func(maxFails int) string {
		return fmt.Sprintf(`{"enable":false,"cluster":[{"servers":[{"host":"127.0.0.1","port":%d,"max_fails":%d,"fail_timeout":60},%s]}]}`,
			dead, maxFails, hostPortJSON(good))
	}
	p := runDaemon(t, "", fmt.Sprintf("listeners: [{listen: %q, upstream: u}]\nupstreams: {u: %s}\n", data, up(1)))
	deadAddr := "127.0.0.1:" + strconv.Itoa(dead)
	testutil.WaitFor(t, "the dead server marked err by a connection", 5*time.Second, func() bool {
		testutil.Greeting(data)
		return p.statusOf(t, "u", deadAddr)["passive"] == "err"
	})
	if _, err := p.do("PUT", "upstream", "u", []byte(up(0))); err != nil {
		t.Fatal(err)
	}
	if got := p.statusOf(t, "u", deadAddr)["passive"]; got != "ok" {
		t.Fatalf("after a PUT with max_fails 0 the passive status is %v", got)
	}
}

// 8. try_timeout bounds the dial in flight: two black-holed servers with a 2 s timeout and
// try_timeout 3 give up at 3 s, not 4.
func TestTryTimeoutBoundsTheDial(t *testing.T) {
	dataPort, _ := testserver.FreePort()
	data := "127.0.0.1:" + strconv.Itoa(dataPort)
	servers := hostPortJSON(testutil.Blackhole(t)) + "," + hostPortJSON(testutil.Blackhole(t)) + "," + hostPortJSON(testutil.Greeter("A"))
	p := runDaemon(t, "", fmt.Sprintf("listeners: [{listen: %q, upstream: u}]\nupstreams: {u: {enable: false, timeout: 2, try_timeout: 3, cluster: [{servers: [%s]}]}}\n", data, servers))
	start := time.Now()
	c, err := net.Dial("tcp", data)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := c.Read(make([]byte, 1))
	if took := time.Since(start); n != 0 || took > 3700*time.Millisecond || took < 2500*time.Millisecond {
		t.Fatalf("read %d bytes, closed after %v; want the connection given up at try_timeout (3s)", n, took)
	}
	testutil.WaitFor(t, "the access line", 2*time.Second, func() bool { return strings.Contains(p.stderr.String(), "outcome=no_upstream") })
}

// 8. The access log tells a backend that closed in the middle of a request from a clean end.
func TestAccessLogUpstreamClosed(t *testing.T) {
	hangUp := testutil.Listen(t)
	go func() {
		for {
			c, err := hangUp.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 64)) // reads the request, dies without an answer
			c.Close()
		}
	}()
	dataPort, _ := testserver.FreePort()
	data := "127.0.0.1:" + strconv.Itoa(dataPort)
	p := runDaemon(t, "", fmt.Sprintf("listeners: [{listen: %q, upstream: u}]\nupstreams: {u: {enable: false, servers: [%s]}}\n", data, hostPortJSON(hangUp.Addr().String())))
	c, err := net.Dial("tcp", data)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("select 1"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1))
	c.Close()
	testutil.WaitFor(t, "outcome=upstream_closed", 5*time.Second, func() bool { return strings.Contains(p.stderr.String(), "outcome=upstream_closed") })
	// A greeting server that closes after speaking is a clean end.
	greet := testutil.Greeter("A")
	p.do("PUT", "upstream", "u", []byte(`{"enable":false,"servers":[`+hostPortJSON(greet)+`]}`))
	if testutil.Greeting(data) != "A" {
		t.Fatal("no greeting")
	}
	testutil.WaitFor(t, "outcome=ok", 5*time.Second, func() bool { return strings.Contains(p.stderr.String(), "outcome=ok") })
}

// 8. AUTH failures from one address are answered ever more slowly, on any connection; the
// right token still works. Heartbeat passwords are masked for clients that did not
// authenticate (no token configured) and shown to those that did.
func TestAuthThrottleAndMaskedPasswords(t *testing.T) {
	up := []byte(`{"typ":"mysql","user":"u","pass":"s3cret","cluster":[{"servers":[{"host":"127.0.0.1","port":9}]}]}`)
	open := runDaemon(t, "", "")
	open.do("PUT", "upstream", "db", up)
	r, err := open.do("GET", "upstream", "info", nil)
	if err != nil || strings.Contains(string(r.Data), "s3cret") || !strings.Contains(string(r.Data), `"pass":"sha256:`) {
		t.Fatalf("without a token, GET upstream info shows %s (%v)", r.Data, err)
	}

	p := runDaemon(t, "", "admin: {token: right}\n")
	ctx := context.Background()
	var last time.Duration
	for i := range 5 {
		start := time.Now()
		_, err := admin.Dial(ctx, p.admin, "wrong")
		last = time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("wrong token %d: %v", i, err)
		}
	}
	if last < time.Second {
		t.Fatalf("the fifth wrong AUTH was answered after %v: no throttle", last)
	}
	c, err := admin.Dial(ctx, p.admin, "right")
	if err != nil {
		t.Fatalf("the right token after failures: %v", err)
	}
	defer c.Close()
	c.Do(ctx, "PUT", "upstream", "db", up)
	if r, err := c.Do(ctx, "GET", "upstream", "info", nil); err != nil || !strings.Contains(string(r.Data), `"pass":"s3cret"`) {
		t.Fatalf("an authenticated client sees %s (%v)", r.Data, err)
	}
}
