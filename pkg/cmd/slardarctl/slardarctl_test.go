package slardarctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/pkg/cmd/slardarctl"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/cmd/snirouter"
	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
)

func startProxy(t *testing.T, token string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := &config.File{Common: config.Common{Admin: config.Admin{Listen: "127.0.0.1:0", Token: token}}}
	d, err := slardarproxy.Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, func() (*config.File, error) { return cfg, nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	return d.AdminAddr()
}

// run executes slardarctl in-process and returns its exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := slardarctl.NewCommand()
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	code := cmdutil.Main(cmd, args, &errOut)
	return code, out.String(), errOut.String()
}

const upstreamYAML = `
typ: general
mode: ip_hash
cluster:
  - servers:
      - {host: 127.0.0.1, port: 1, max_fails: 3}
      - {host: 127.0.0.1, port: 2, weight: 2}
`

func TestUpstreamLifecycle(t *testing.T) {
	addr := startProxy(t, "")
	a := "--addr=" + addr
	if code, _, errOut := run(t, upstreamYAML, a, "upstream", "put", "3131", "-f", "-"); code != 0 || !strings.Contains(errOut, "upstream 3131 put on "+addr) {
		t.Fatalf("put: %d %q", code, errOut)
	}
	code, out, _ := run(t, "", a, "upstream", "list")
	if code != 0 || !strings.Contains(out, "3131") || !strings.Contains(out, "ip_hash") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", a, "-o", "json", "upstream", "get", "3131")
	var up struct {
		Mode    string `json:"mode"`
		Cluster []struct {
			Servers []struct {
				Port, Weight int
			} `json:"servers"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(out), &up); code != 0 || err != nil || up.Mode != "ip_hash" || up.Cluster[0].Servers[1].Weight != 2 {
		t.Fatalf("get json: %d %v\n%s", code, err, out)
	}
	code, out, _ = run(t, "", a, "upstream", "get", "3131")
	if code != 0 || !strings.Contains(out, "127.0.0.1:2") || !strings.Contains(out, "FAIL_TIMEOUT") {
		t.Fatalf("get table: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", a, "status")
	if code != 0 || !strings.Contains(out, "STATUS") || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", a, "raw", "GET", "upstream", "info")
	if code != 0 || !strings.HasPrefix(out, `{"3131":`) {
		t.Fatalf("raw: %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "", a, "upstream", "delete", "3131"); code != 0 || !strings.Contains(errOut, "deleted") {
		t.Fatalf("delete: %d %s", code, errOut)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	addr := startProxy(t, "")
	a := "--addr=" + addr
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	notAdmin := "--addr=" + web.Listener.Addr().String()
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{name: "refused before sending", stdin: `{"servers":[]}`, args: []string{a, "upstream", "put", "x", "-f", "-"}, code: cmdutil.ExitBadArgs, msg: "servers invalid"},
		{name: "delete missing", args: []string{a, "upstream", "delete", "nope"}, code: cmdutil.ExitError, msg: "upstream nope not found"},
		{name: "server of a missing upstream", args: []string{a, "server", "drain", "nope", "127.0.0.1:1"}, code: cmdutil.ExitError, msg: "upstream nope not found"},
		{name: "get missing", args: []string{a, "upstream", "get", "nope"}, code: cmdutil.ExitError, msg: "upstream nope not found"},
		{name: "bad JSON input", stdin: "{not: [valid", args: []string{a, "upstream", "put", "x", "-f", "-"}, code: cmdutil.ExitBadArgs, msg: "JSON line 1, column 2"},
		{name: "bad YAML input", stdin: "servers: [valid", args: []string{a, "upstream", "put", "x", "-f", "-"}, code: cmdutil.ExitBadArgs, msg: "YAML"},
		{name: "unknown field, positioned", stdin: "servers:\n  - host: a\n    port: 1\n    wieght: 2\n", args: []string{a, "upstream", "put", "x", "-f", "-"},
			code: cmdutil.ExitBadArgs, msg: `-: line 4 column 5: server 1: unknown field "wieght"`},
		{name: "unknown field in JSON, positioned", stdin: "{\"servers\": [{\"host\": \"a\", \"port\": 1,\n  \"wieght\": 2}]}", args: []string{a, "upstream", "put", "x", "-f", "-"},
			code: cmdutil.ExitBadArgs, msg: `line 2 column 3: server 1: unknown field "wieght"`},
		{name: "missing file flag", args: []string{a, "upstream", "put", "x"}, code: cmdutil.ExitBadArgs, msg: `"file" not set`},
		{name: "unreachable", args: []string{"--addr=127.0.0.1:1", "status"}, code: cmdutil.ExitUnreachable, msg: "connection refused"},
		{name: "bad output", args: []string{a, "-o", "xml", "status"}, code: cmdutil.ExitBadArgs, msg: "want table, json or yaml"},
		{name: "bad addr", args: []string{"--addr=nope", "status"}, code: cmdutil.ExitBadArgs, msg: "want HOST:PORT"},
		{name: "unknown command", args: []string{"frobnicate"}, code: cmdutil.ExitBadArgs, msg: "unknown command"},
		{name: "raw error", args: []string{a, "raw", "GET", "nope", "x"}, code: cmdutil.ExitReplyError, msg: "topic invalid"},
		{name: "unknown subcommand", args: []string{a, "upstream", "frob"}, code: cmdutil.ExitBadArgs, msg: `unknown command "frob" for "slardarctl upstream"`},
		{name: "unknown subcommand suggests", args: []string{a, "code", "lod"}, code: cmdutil.ExitBadArgs, msg: "Did you mean this?\n\tload"},
		{name: "unknown store subcommand", args: []string{"store", "frob"}, code: cmdutil.ExitBadArgs, msg: `unknown command "frob"`},
		{name: "raw body missing", args: []string{"--timeout=30s", a, "raw", "PUT", "upstream", "x"}, code: cmdutil.ExitBadArgs, msg: "PUT upstream needs a body"},
		{name: "raw body missing, any case", args: []string{"--timeout=30s", a, "raw", "load", "CODE", "x"}, code: cmdutil.ExitBadArgs, msg: "LOAD code needs a body"},
		{name: "raw body not taken", stdin: "x", args: []string{a, "raw", "GET", "upstream", "info", "-f", "-"}, code: cmdutil.ExitBadArgs, msg: "GET upstream takes no body"},
		{name: "not an admin port", args: []string{notAdmin, "status"}, code: cmdutil.ExitUnreachable, msg: "does not speak the admin protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := run(t, tt.stdin, tt.args...)
			if code == cmdutil.ExitBadArgs && time.Since(start) > 10*time.Second {
				t.Errorf("a usage error took %s: it waited for a proxy", time.Since(start))
			}
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, errOut, tt.code, tt.msg)
			}
		})
	}
}

// TestFleet: with several --addr a change goes to every proxy; status rows carry the proxy.
func TestFleet(t *testing.T) {
	a1, a2 := startProxy(t, ""), startProxy(t, "tok")
	t.Setenv("SLARDAR_ADDR", a1+","+a2)
	t.Setenv("SLARDAR_TOKEN", "tok")
	// a1 has no token configured; AUTH is still accepted there.
	if code, _, errOut := run(t, `{"servers":[{"host":"127.0.0.1","port":9}]}`, "upstream", "put", "u", "-f", "-"); code != 0 || strings.Count(errOut, "put on") != 2 {
		t.Fatalf("fleet put: %d %s", code, errOut)
	}
	code, out, _ := run(t, "", "status")
	if code != 0 || !strings.Contains(out, "PROXY") || !strings.Contains(out, a1) || !strings.Contains(out, a2) {
		t.Fatalf("fleet status: %d\n%s", code, out)
	}
	t.Setenv("SLARDAR_TOKEN", "wrong")
	if code, _, errOut := run(t, "", "upstream", "list"); code != cmdutil.ExitReplyError || !strings.Contains(errOut, "authentication failed") {
		t.Fatalf("wrong token: %d %s", code, errOut)
	}
}

func TestCodeCommands(t *testing.T) {
	addr := startProxy(t, "")
	a := "--addr=" + addr
	if code, _, errOut := run(t, `ngx.say("Hello, Lua!")`, a, "code", "load", "script.content3351", "-f", "-"); code != 0 || !strings.Contains(errOut, "code script.content3351 loaded on") {
		t.Fatalf("load: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `ngx.say("Hello, Lua!")`, a, "code", "load", "script.content3351", "-f", "-"); code != cmdutil.ExitReplyError || !strings.Contains(errOut, "code already in shdict") {
		t.Fatalf("load twice: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `x = = 1`, a, "code", "post", "m", "-f", "-"); code != cmdutil.ExitReplyError || !strings.Contains(errOut, "compiling m") {
		t.Fatalf("post bad code: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `return {}`, a, "code", "post", "m", "-f", "-"); code != 0 {
		t.Fatalf("post: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "", a, "code", "install", "m"); code != 0 || !strings.Contains(errOut, "installed") {
		t.Fatalf("install: %d %s", code, errOut)
	}
	code, out, _ := run(t, "", a, "code", "info")
	if code != 0 || !strings.Contains(out, "script.content3351") || !strings.Contains(out, "VERSION") {
		t.Fatalf("info: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", a, "-o", "json", "code", "get", "m")
	if code != 0 || !strings.Contains(out, `"version": "`) {
		t.Fatalf("get: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "", a, "code", "delete", "m"); code != 0 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, errOut := run(t, "", a, "code", "get", "m"); code != cmdutil.ExitError || !strings.Contains(errOut, "not installed") {
		t.Fatalf("get deleted: %d %s", code, errOut)
	}
}

func TestRouteCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := config.ParseSNI([]byte("admin: {listen: 127.0.0.1:0}\nsni: {allow: ['*.internal:8443']}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"127.0.0.1:0"}
	d, err := snirouter.Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	a := "--addr=" + d.AdminAddr()
	if code, _, errOut := run(t, `{"upstream":"web","alpn":"h2"}`, a, "route", "put", "www.example.com", "-f", "-"); code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "target: '${1}.internal:8443'\nproxy_protocol: 1\n", a, "route", "put", `~(.+)\.svc`, "-f", "-"); code != 0 {
		t.Fatalf("put yaml: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `{"target":"$sni:443"}`, "--addr="+d.AdminAddr(), "route", "put", "x", "-f", "-"); code != 0 {
		t.Fatalf("put target: %d %s", code, errOut)
	}
	code, out, _ := run(t, "", a, "route", "list")
	if code != 0 || !strings.Contains(out, "upstream web") || !strings.Contains(out, "target ${1}.internal:8443") || !strings.Contains(out, "v1") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", a, "-o", "json", "route", "get", "www.example.com")
	if code != 0 || !strings.Contains(out, `"alpn": [`) {
		t.Fatalf("get: %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "", a, "route", "get", "nope"); code != cmdutil.ExitError || !strings.Contains(errOut, "route nope not found") {
		t.Fatalf("get missing: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `{"upstream":"x","proxy_protocol":3}`, a, "route", "put", "y", "-f", "-"); code != cmdutil.ExitBadArgs || !strings.Contains(errOut, "proxy_protocol 3") {
		t.Fatalf("bad route: %d %s", code, errOut)
	}
	if code, _, _ := run(t, "", a, "route", "delete", "www.example.com"); code != 0 {
		t.Fatalf("delete: %d", code)
	}
}

func TestStoreCommands(t *testing.T) {
	s := "--store=dir://" + t.TempDir()
	if code, _, errOut := run(t, "servers: [{host: 127.0.0.1, port: 3306}]\n", s, "store", "put", "upstream", "3131", "-f", "-"); code != 0 || !strings.Contains(errOut, "config/slardar/upstreams_stream/3131 written") {
		t.Fatalf("put: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `x = = 1`, s, "store", "put", "code", "script.preread1", "-f", "-"); code != cmdutil.ExitBadArgs || !strings.Contains(errOut, "compiling") {
		t.Fatalf("put bad code: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, `ngx.exit(1)`, s, "store", "put", "code", "script.preread1", "-f", "-"); code != 0 {
		t.Fatalf("put code: %d %s", code, errOut)
	}
	code, out, _ := run(t, "", s, "store", "get", "upstream", "3131")
	if code != 0 || !strings.Contains(out, `"servers":[{"host":"127.0.0.1","port":3306}]`) {
		t.Fatalf("get: %d %s", code, out)
	}
	code, out, _ = run(t, "", s, "store", "list")
	if code != 0 || !strings.Contains(out, "config/slardar/lua_stream/script.preread1") || !strings.Contains(out, "ok") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "", s, "store", "delete", "upstream", "3131"); code != 0 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, errOut := run(t, "", s, "store", "get", "upstream", "3131"); code != cmdutil.ExitError || !strings.Contains(errOut, "not found") {
		t.Fatalf("get deleted: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "", "store", "list"); code != cmdutil.ExitBadArgs || !strings.Contains(errOut, "no store given") {
		t.Fatalf("no store: %d %s", code, errOut)
	}
}

// TestServerStates: drain, maint and ready on two proxies at once; status and server get show
// the state; an unknown server is the proxy's error (exit 4).
func TestServerStates(t *testing.T) {
	a1, a2 := startProxy(t, ""), startProxy(t, "")
	both := "--addr=" + a1 + "," + a2
	if code, _, errOut := run(t, upstreamYAML, both, "upstream", "put", "3131", "-f", "-"); code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "", both, "server", "drain", "3131", "127.0.0.1:2"); code != 0 || strings.Count(errOut, "server 127.0.0.1:2 of 3131: drain") != 2 {
		t.Fatalf("drain: %d %q", code, errOut)
	}
	code, out, _ := run(t, "", "--addr="+a2, "status")
	if code != 0 || !strings.Contains(out, "STATE") || !regexp.MustCompile(`127\.0\.0\.1:2\s+\S+\s+drain`).MatchString(out) || !strings.Contains(out, "last config load: ") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "--addr="+a1, "-o", "json", "server", "get", "3131", "127.0.0.1:2")
	if code != 0 || !strings.Contains(out, `"state":"drain"`) && !strings.Contains(out, `"state": "drain"`) {
		t.Fatalf("server get: %d %s", code, out)
	}
	if code, _, _ := run(t, "", both, "server", "ready", "3131", "127.0.0.1:2"); code != 0 {
		t.Fatalf("ready: %d", code)
	}
	if code, _, errOut := run(t, "", "--addr="+a1, "server", "maint", "3131", "127.0.0.1:9"); code != cmdutil.ExitReplyError || !strings.Contains(errOut, "no such server") {
		t.Fatalf("unknown server: %d %q", code, errOut)
	}
	if code, _, _ := run(t, "", "--addr="+a1, "server", "drain", "3131"); code != cmdutil.ExitBadArgs {
		t.Fatalf("missing argument: %d", code)
	}
}

// TestFleetAllOrNothing: a change to several proxies is checked on every one first; one that
// lacks the upstream or is down leaves all of them unchanged, unless --best-effort.
func TestFleetAllOrNothing(t *testing.T) {
	a1, a2 := startProxy(t, ""), startProxy(t, "")
	if code, _, errOut := run(t, upstreamYAML, "--addr="+a1, "upstream", "put", "web", "-f", "-"); code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	state := func(addr string) string {
		t.Helper()
		code, out, errOut := run(t, "", "--addr="+addr, "-o", "json", "server", "get", "web", "127.0.0.1:2")
		var s struct{ State string }
		if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil {
			t.Fatalf("server get: %d %v %s", code, err, errOut)
		}
		return s.State
	}
	both := "--addr=" + a1 + "," + a2
	code, _, errOut := run(t, "", both, "server", "drain", "web", "127.0.0.1:2")
	if code != cmdutil.ExitError || !strings.Contains(errOut, a2+": upstream web not found") || !strings.Contains(errOut, "nothing changed on any proxy") || strings.Contains(errOut, "drain on") {
		t.Fatalf("drain where one proxy lacks the upstream: %d %q", code, errOut)
	}
	if s := state(a1); s != "ready" {
		t.Fatalf("%s drained although %s could not be: %s", a1, a2, s)
	}
	down := "--addr=" + a1 + ",127.0.0.1:1"
	if code, _, errOut := run(t, "", down, "server", "maint", "web", "127.0.0.1:2"); code != cmdutil.ExitUnreachable || !strings.Contains(errOut, "nothing changed") {
		t.Fatalf("maint with a proxy down: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "", both, "upstream", "delete", "web"); code != cmdutil.ExitError || !strings.Contains(errOut, "nothing changed") {
		t.Fatalf("delete where one proxy lacks it: %d %q", code, errOut)
	}
	code, _, errOut = run(t, "", both, "server", "drain", "--best-effort", "web", "127.0.0.1:2")
	if code != cmdutil.ExitError || !strings.Contains(errOut, "drain on "+a1) {
		t.Fatalf("best effort: %d %q", code, errOut)
	}
	if s := state(a1); s != "drain" {
		t.Fatalf("--best-effort did not drain %s: %s", a1, s)
	}
}

// TestCompletion: upstream names and servers come from the proxy; flag values are offered.
func TestCompletion(t *testing.T) {
	addr := startProxy(t, "")
	if code, _, errOut := run(t, upstreamYAML, "--addr="+addr, "upstream", "put", "web", "-f", "-"); code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "--addr=" + addr, "upstream", "get", ""}, "web\n:4\n"},
		{[]string{"__complete", "--addr=" + addr, "server", "drain", "web", ""}, "127.0.0.1:1\n127.0.0.1:2\n:4\n"},
		{[]string{"__complete", "--addr=" + addr, "server", "drain", "web", "127.0.0.1:1", ""}, ":4\n"},
		{[]string{"__complete", "-o", ""}, "table\njson\nyaml\n:4\n"},
	} {
		if _, out, _ := run(t, "", tt.args...); !strings.HasPrefix(out, tt.want) {
			t.Errorf("%q: %q, want %q", tt.args, out, tt.want)
		}
	}
}

// TestStatusShapes: structured status is a list of proxies for one --addr or many, with
// upstream names and levels; YAML has the same fields; --no-headers drops the header; a proxy
// that is down prints no empty table; --watch prints again until interrupted.
func TestStatusShapes(t *testing.T) {
	a1, a2 := startProxy(t, ""), startProxy(t, "")
	if code, _, errOut := run(t, upstreamYAML, "--addr="+a1+","+a2, "upstream", "put", "web", "-f", "-"); code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	type entry struct {
		Proxy, Error   string
		SlardarVersion string `json:"slardar_version"`
		Upstreams      []struct {
			Name    string
			Servers []struct{ Level, Server, State string }
		}
	}
	for _, addrs := range []string{a1, a1 + "," + a2, a1 + ",127.0.0.1:1"} {
		code, out, _ := run(t, "", "--addr="+addrs, "-o", "json", "status")
		var list []entry
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("--addr %s: not a list: %v\n%s", addrs, err, out)
		}
		want := strings.Split(addrs, ",")
		if len(list) != len(want) {
			t.Fatalf("--addr %s: %d entries\n%s", addrs, len(list), out)
		}
		for i, e := range list {
			if e.Proxy != want[i] {
				t.Fatalf("entry %d is %q, want %q", i, e.Proxy, want[i])
			}
			if want[i] == "127.0.0.1:1" {
				if code != cmdutil.ExitUnreachable || e.Error == "" {
					t.Fatalf("down proxy: exit %d, entry %+v", code, e)
				}
				continue
			}
			if len(e.Upstreams) != 1 || e.Upstreams[0].Name != "web" || len(e.Upstreams[0].Servers) != 2 || e.SlardarVersion == "" {
				t.Fatalf("entry %+v\n%s", e, out)
			}
			if s := e.Upstreams[0].Servers[1]; s.Level != "1" || s.Server != "127.0.0.1:2" || s.State != "ready" {
				t.Fatalf("server %+v", s)
			}
		}
	}
	code, out, _ := run(t, "", "--addr="+a1, "-o", "yaml", "status")
	if code != 0 || !strings.Contains(out, "- proxy: "+a1) && !strings.Contains(out, "proxy: "+a1) || !strings.Contains(out, "name: web") || !strings.Contains(out, "server: 127.0.0.1:2") {
		t.Fatalf("yaml: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "--addr="+a1, "--no-headers", "status")
	if code != 0 || strings.Contains(out, "UPSTREAM") || !strings.Contains(out, "127.0.0.1:2") {
		t.Fatalf("--no-headers: %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "--addr=127.0.0.1:1", "status")
	if code != cmdutil.ExitUnreachable || out != "" {
		t.Fatalf("down proxy printed %q (exit %d)", out, code)
	}

	// An interrupt cancels the context (a deadline would race the exchanges' own deadlines).
	ctx, cancel := context.WithCancel(context.Background())
	defer time.AfterFunc(3*time.Second, cancel).Stop()
	var buf, errBuf bytes.Buffer
	cmd := slardarctl.NewCommand()
	cmd.SetContext(ctx)
	cmd.SetOut(&buf)
	cmd.SetErr(&errBuf)
	if code := cmdutil.Main(cmd, []string{"--addr=" + a1, "status", "--watch", "--interval=100ms"}, &errBuf); code != 0 {
		t.Fatalf("watch: exit %d %s", code, errBuf.String())
	}
	// Every print whole: a header and the server's row (its heartbeat message names it too).
	rows := regexp.MustCompile(`(?m)^\s*web\s+1\s+127\.0\.0\.1:2\s`)
	if n := strings.Count(buf.String(), "Every 100ms: slardarctl status"); n < 3 || len(rows.FindAllString(buf.String(), -1)) != n {
		t.Fatalf("watch printed %d times in 3s:\n%s", n, buf.String())
	}
}

// TestStrictInput: JSON input is JSON (a trailing comma is an error with its line and column,
// not YAML by accident) and an upstream's unknown field is refused by name before anything is
// sent; the proxy is left as it was.
func TestStrictInput(t *testing.T) {
	addr := startProxy(t, "")
	a := "--addr=" + addr
	for _, tt := range []struct{ topic, body, want string }{
		{"upstream", "{\"servers\":[{\"host\":\"127.0.0.1\",\n \"port\":23306,}]}", "JSON line 2, column"},
		{"upstream", `{"servers":[{"host":"127.0.0.1","port":1,"wieght":2}]}`, `unknown field "wieght"`},
		{"upstream", "cluster:\n  - servers: [{host: a, port: 1}]\nmod: rr\n", `unknown field "mod"`},
		{"upstream", `{"servers":[{"host":"a","port":1}]} {}`, "data after the JSON value"},
		{"route", `{"upstream":"web","alpn":["h2"],"proxyprotocol":1}`, "proxyprotocol"},
	} {
		code, _, errOut := run(t, tt.body, a, tt.topic, "put", "x", "-f", "-")
		if code != cmdutil.ExitBadArgs || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s put %q: %d %q; want exit 2 with %q", tt.topic, tt.body, code, errOut, tt.want)
		}
	}
	if _, out, _ := run(t, "", a, "-o", "json", "upstream", "list"); strings.Contains(out, `"x"`) {
		t.Fatalf("a refused upstream reached the proxy: %s", out)
	}
}
