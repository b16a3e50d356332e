package slardarproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
)

// httpOn is a config's HTTP endpoint on a free loopback port.
func httpOn() config.HTTP {
	addr := "127.0.0.1:0"
	return config.HTTP{Listen: &addr}
}

// echoServer answers every read with name + ":" and the bytes, until the client closes.
func echoServer(t *testing.T, name string) string {
	addr, stop := testutil.Echo(name + ":")
	t.Cleanup(stop)
	return addr
}

// ask opens a connection to addr, sends msg and returns the reply.
func ask(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading a reply to %q: %v", msg, err)
	}
	return string(buf[:n])
}

func upstreamOf(addrs ...string) string {
	var servers []string
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		servers = append(servers, fmt.Sprintf(`{"host":%q,"port":%s}`, host, port))
	}
	return `{"enable":false,"cluster":[{"servers":[` + strings.Join(servers, ",") + `]}]}`
}

// TestMetricsAndHealth: /livez, /readyz and /metrics on a real daemon; the series exist before
// the first event and move after traffic, dials, admin commands, scripts and reloads; every
// admin change leaves an audit line.
func TestMetricsAndHealth(t *testing.T) {
	a, b := echoServer(t, "A"), echoServer(t, "B")
	var logs testutil.SyncBuffer
	dir := t.TempDir()
	cfg := &config.File{
		Common: config.Common{Admin: config.Admin{Listen: "127.0.0.1:0"}, HTTP: httpOn(),
			Proxy: config.Proxy{ShutdownGrace: time.Second}},
		Listeners: []config.Listener{{Listen: "127.0.0.1:0", Upstream: "3131"}},
		Scripts:   config.Scripts{Dir: dir},
	}
	os.WriteFile(filepath.Join(dir, "x.lua"), []byte("return {}"), 0o644)
	load := func() (*config.File, error) {
		if _, err := os.Stat(filepath.Join(dir, "broken")); err == nil {
			return nil, fmt.Errorf("broken on purpose")
		}
		return cfg, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, slog.New(slog.NewTextHandler(&logs, nil)), cfg, load)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	web := d.HTTPAddr()
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := testutil.Get(t, web, path); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	putUpstream(t, d, upstreamOf(a, b))
	listener := d.ListenerAddr("3131")

	m := testutil.Scrape(t, web)
	for _, name := range []string{"slardar_build_info", "go_goroutines", "process_open_fds", "slardar_config_last_reload_successful",
		"slardar_config_last_reload_timestamp_seconds", "slardar_admin_commands_total", "slardar_server_up", "slardar_server_state"} {
		if m[name] == nil {
			t.Errorf("%s missing before any traffic", name)
		}
	}
	if v, ok := m.Value("slardar_admin_commands_total", map[string]string{"method": "DELETE", "topic": "upstream", "result": "ok"}); !ok || v != 0 {
		t.Errorf("an admin command never sent has no zero series: %v %v", v, ok)
	}
	if v, _ := m.Value("slardar_admin_commands_total", map[string]string{"method": "PUT", "topic": "upstream", "result": "ok"}); v != 1 {
		t.Errorf("PUT upstream counted %v times", v)
	}
	if v, ok := m.Value("slardar_server_up", map[string]string{"upstream": "3131", "server": a}); !ok || v != 1 {
		t.Errorf("server_up of %s: %v %v", a, v, ok)
	}
	if !strings.Contains(logs.String(), `msg="admin change" method=PUT topic=upstream name=3131`) {
		t.Errorf("no audit line for PUT upstream:\n%s", logs.String())
	}

	for i := range 4 {
		c, err := net.Dial("tcp", listener)
		if err != nil {
			t.Fatal(err)
		}
		ask(t, c, fmt.Sprintf("ping%d", i))
		c.Close()
	}
	testutil.WaitFor(t, "connections counted", 5*time.Second, func() bool {
		m := testutil.Scrape(t, web)
		total := 0.0
		for _, srv := range []string{a, b} {
			v, _ := m.Value("slardar_connections_total", map[string]string{"upstream": "3131", "server": srv, "outcome": "ok", "listener": listener})
			total += v
		}
		return total == 4
	})
	m = testutil.Scrape(t, web)
	if v, _ := m.Value("slardar_bytes_total", map[string]string{"upstream": "3131", "direction": "in"}); v != 4*5 {
		t.Errorf("bytes in: %v", v)
	}
	if v, _ := m.Value("slardar_connection_duration_seconds", map[string]string{"upstream": "3131"}); v != 4 {
		t.Errorf("duration observations: %v", v)
	}
	if v, _ := m.Value("slardar_dial_attempts_total", map[string]string{"upstream": "3131", "server": a, "result": "ok"}); v != 2 {
		t.Errorf("dials to %s: %v", a, v)
	}

	// A server that leaves the upstream takes its series with it (churn must not grow them).
	putUpstream(t, d, upstreamOf(b))
	m = testutil.Scrape(t, web)
	if _, found := m.Value("slardar_dial_attempts_total", map[string]string{"server": a}); found {
		t.Error("dial series of a removed server remain")
	}
	if _, found := m.Value("slardar_connections_total", map[string]string{"server": a}); found {
		t.Error("connection series of a removed server remain")
	}
	if v, _ := m.Value("slardar_dial_attempts_total", map[string]string{"server": b, "result": "ok"}); v != 2 {
		t.Errorf("the kept server's series lost its count: %v", v)
	}
	putUpstream(t, d, upstreamOf(a, b))

	// A script's runs, by result.
	if r := adminDo(t, d, "LOAD", "code", "script.preread"+portOf(listener), []byte("if ngx.var.remote_addr == 'x' then ngx.exit(1) end")); r.Type != admin.TypeOK {
		t.Fatalf("LOAD code: %s", r.Data)
	}
	c, _ := net.Dial("tcp", listener)
	ask(t, c, "hi")
	c.Close()
	testutil.WaitFor(t, "script run counted", 5*time.Second, func() bool {
		v, _ := testutil.Scrape(t, web).Value("slardar_script_runs_total", map[string]string{"script": "script.preread" + portOf(listener), "result": "ok"})
		return v == 1
	})
	if !strings.Contains(logs.String(), "body_md5=") {
		t.Errorf("LOAD code audit line lacks the body's md5:\n%s", logs.String())
	}
	// A connection the script refuses ends as it decided: outcome "rejected", not an error.
	if r := adminDo(t, d, "LOAD", "code", "script.preread"+portOf(listener), []byte("ngx.exit(403)")); r.Type != admin.TypeOK {
		t.Fatalf("LOAD code: %s", r.Data)
	}
	c, _ = net.Dial("tcp", listener)
	io.Copy(io.Discard, c)
	c.Close()
	testutil.WaitFor(t, "the refused connection counted", 5*time.Second, func() bool {
		v, _ := testutil.Scrape(t, web).Value("slardar_connections_total", map[string]string{"listener": listener, "outcome": "rejected"})
		return v == 1
	})
	if !regexp.MustCompile(`status=403 outcome=rejected`).MatchString(logs.String()) {
		t.Errorf("access line of the refused connection:\n%s", logs.String())
	}
	adminDo(t, d, "DELETE", "code", "script.preread"+portOf(listener), nil)

	// A reload that fails shows in the metrics and in GET upstream status.
	os.WriteFile(filepath.Join(dir, "broken"), nil, 0o644)
	if err := d.Reload(context.Background()); err == nil {
		t.Fatal("reload of a broken config succeeded")
	}
	if v, _ := testutil.Scrape(t, web).Value("slardar_config_last_reload_successful", nil); v != 0 {
		t.Errorf("reload_successful after a failed reload: %v", v)
	}
	var st struct {
		LastReload struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"last_reload"`
	}
	if err := json.Unmarshal(adminDo(t, d, "GET", "upstream", "status", nil).Data, &st); err != nil || st.LastReload.OK || !strings.Contains(st.LastReload.Error, "broken on purpose") {
		t.Errorf("status last_reload: %+v %v", st.LastReload, err)
	}
	os.Remove(filepath.Join(dir, "broken"))
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := testutil.Scrape(t, web).Value("slardar_config_last_reload_successful", nil); v != 1 {
		t.Errorf("reload_successful after a good reload: %v", v)
	}

	// /readyz turns 503 when the daemon drains.
	d.Shutdown(context.Background())
	if code, _ := getNoFail(web, "/readyz"); code == 200 {
		t.Error("/readyz still 200 after shutdown")
	}
}

// getNoFail is an HTTP GET that reports a refused connection as code 0.
func getNoFail(addr, path string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line := make([]byte, 12)
	if _, err := io.ReadFull(c, line); err != nil {
		return 0, err
	}
	var code int
	fmt.Sscanf(string(line[9:12]), "%d", &code)
	return code, nil
}

// TestDrainAndMaint: a drained server gets none of 50 new connections while its open one keeps
// working and shows in status and the metrics; maint also pauses its heartbeats; ready brings it
// back. The state survives a PUT upstream that keeps the server.
func TestDrainAndMaint(t *testing.T) {
	a, b := echoServer(t, "A"), echoServer(t, "B")
	d := startDaemon(t, func(c *config.File) { c.HTTP = httpOn() })
	putUpstream(t, d, upstreamOf(a, b))
	listener := d.ListenerAddr("3131")
	// An open connection to A.
	var open net.Conn
	for open == nil {
		c, err := net.Dial("tcp", listener)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(ask(t, c, "who"), "A:") {
			open = c
		} else {
			c.Close()
		}
	}
	defer open.Close()
	if r := adminDo(t, d, "PUT", "server", "3131/"+a, []byte(`{"state":"drain"}`)); r.Type != admin.TypeOK {
		t.Fatalf("PUT server drain: %s", r.Data)
	}
	for i := range 50 {
		c, err := net.Dial("tcp", listener)
		if err != nil {
			t.Fatal(err)
		}
		if got := ask(t, c, "x"); !strings.HasPrefix(got, "B:") {
			t.Fatalf("connection %d reached %q while A drains", i, got)
		}
		c.Close()
	}
	if got := ask(t, open, "still"); got != "A:still" {
		t.Fatalf("the open connection to the drained server: %q", got)
	}
	var st checkups.ServerStatus
	if err := json.Unmarshal(adminDo(t, d, "GET", "server", "3131/"+a, nil).Data, &st); err != nil || st.State != "drain" || st.ActiveConns != 1 {
		t.Fatalf("GET server: %+v %v", st, err)
	}
	m := testutil.Scrape(t, d.HTTPAddr())
	if v, _ := m.Value("slardar_server_operator_state", map[string]string{"server": a, "state": "drain"}); v != 1 {
		t.Errorf("server_operator_state drain: %v", v)
	}
	if v, _ := m.Value("slardar_server_state", map[string]string{"server": a, "state": string(st.Status)}); v != 1 {
		t.Errorf("the drained server's health (%s) is not visible: %v", st.Status, v)
	}
	if v, _ := m.Value("slardar_server_up", map[string]string{"server": a}); v != 0 {
		t.Errorf("server_up of a drained server: %v", v)
	}
	if v, _ := m.Value("slardar_active_connections", map[string]string{"server": a}); v != 1 {
		t.Errorf("active connections of the drained server: %v", v)
	}
	// A PUT that keeps the server keeps its state.
	putUpstream(t, d, upstreamOf(a, b))
	if got := status(t, d); got[0].State != "drain" {
		t.Fatalf("state after PUT upstream: %+v", got[0])
	}
	// Bad requests.
	for _, bad := range []struct{ name, body, want string }{
		{"3131/" + a, `{"state":"off"}`, "want ready, drain or maint"},
		{"3131/127.0.0.1:1", `{"state":"drain"}`, "no such server"},
		{"nope/" + a, `{"state":"drain"}`, "nope"},
		{"3131", `{"state":"drain"}`, "UPSTREAM/HOST:PORT"},
		{"3131/" + a, `{"stat":"drain"}`, "invalid body"},
	} {
		if r := adminDo(t, d, "PUT", "server", bad.name, []byte(bad.body)); r.Type != admin.TypeError || !strings.Contains(string(r.Data), bad.want) {
			t.Errorf("PUT server %s %s: %s", bad.name, bad.body, r.Data)
		}
	}
	if r := adminDo(t, d, "PUT", "server", "3131/"+a, []byte(`{"state":"ready"}`)); r.Type != admin.TypeOK {
		t.Fatalf("ready: %s", r.Data)
	}
	testutil.WaitFor(t, "A back in rotation", 3*time.Second, func() bool {
		c, err := net.Dial("tcp", listener)
		if err != nil {
			return false
		}
		defer c.Close()
		return strings.HasPrefix(ask(t, c, "y"), "A:")
	})
}

// TestMaintPausesHeartbeats: a server in maint is not checked (its status stays maint, no
// heartbeat error accrues for a dead server), and it comes back through its heartbeat.
func TestMaintPausesHeartbeats(t *testing.T) {
	a := echoServer(t, "A")
	dead := testutil.Listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	d := startDaemon(t, nil)
	host, port, _ := net.SplitHostPort(a)
	dhost, dport, _ := net.SplitHostPort(deadAddr)
	putUpstream(t, d, fmt.Sprintf(`{"timeout":1,"cluster":[{"servers":[{"host":%q,"port":%s},{"host":%q,"port":%s}]}]}`, host, port, dhost, dport))
	if r := adminDo(t, d, "PUT", "server", "3131/"+deadAddr, []byte(`{"state":"maint"}`)); r.Type != admin.TypeOK {
		t.Fatalf("maint: %s", r.Data)
	}
	time.Sleep(600 * time.Millisecond) // three heartbeat rounds
	st := status(t, d)
	if st[1].Status != checkups.StatusMaint || st[1].FailNum != 0 || st[1].Msg != nil {
		t.Fatalf("a dead server in maint was checked: %+v", st[1])
	}
	if st[0].Status != checkups.StatusOK {
		t.Fatalf("the other server: %+v", st[0])
	}
	adminDo(t, d, "PUT", "server", "3131/"+deadAddr, []byte(`{"state":"ready"}`))
	testutil.WaitFor(t, "the dead server's heartbeat to fail once back", 3*time.Second, func() bool {
		return status(t, d)[1].Status == checkups.StatusErr
	})
}
