package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/pkg/script"
)

func TestParse(t *testing.T) {
	f, err := Parse([]byte(`
admin: {listen: "127.0.0.1:1895", idle_timeout: 30s}
checkups: {interval: 2s}
listeners:
  - listen: "3131"
  - listen: 127.0.0.1:3306
    upstream: MySQL
upstreams:
  "3131":
    typ: mysql
    servers: [{host: 127.0.0.1, port: 3306}]
  MySQL:
    cluster: [{servers: [{host: db1, port: 3306, weight: 2}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Admin.IdleTimeout != 30*time.Second || f.Checkups.Interval != 2*time.Second {
		t.Fatalf("durations: %+v %+v", f.Admin, f.Checkups)
	}
	if f.Listeners[0] != (Listener{Listen: ":3131", Upstream: "3131"}) || f.Listeners[1].Upstream != "MySQL" {
		t.Fatalf("listeners: %+v", f.Listeners)
	}
	if f.Upstreams["3131"].Typ != "mysql" || f.Upstreams["MySQL"].Cluster.Levels[0].Servers[0].Weight != 2 {
		t.Fatalf("upstreams (names keep their case): %+v", f.Upstreams)
	}
	if f, err := Parse(nil); err != nil || len(f.Listeners) != 0 {
		t.Fatalf("empty config: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{name: "unknown key", yaml: "admin: {listne: x}", want: "field listne not found"},
		{name: "bad duration", yaml: "checkups: {interval: soon}", want: "soon"},
		{name: "bad listener", yaml: "listeners: [{listen: 'a:b:c'}]", want: "listeners[0]"},
		{name: "bad port", yaml: "listeners: [{listen: '70000'}]", want: "port must be 1..65535"},
		{name: "bad upstream", yaml: "upstreams: {x: {servers: []}}", want: `upstream "x": servers invalid`},
		{name: "bad log format", yaml: "log: {format: xml}", want: "want text or json"},
		{name: "bad log level", yaml: "log: {level: loud}", want: "want debug, info, warn or error"},
		// Below an upstream, the line and column of the key the error is about.
		{name: "server field", yaml: "upstreams:\n  web2:\n    servers:\n      - host: a\n        port: 80\n        wieght: 2\n",
			want: `line 6 column 9: upstream "web2": server 1: unknown field "wieght"`},
		{name: "second server", yaml: "upstreams:\n  w:\n    servers:\n      - {host: a, port: 80}\n      - {host: b, port: 0}\n",
			want: `line 5 column 19: upstream "w": server 2: port must be`},
		{name: "upstream timeout", yaml: "upstreams:\n  w:\n    servers: [{host: a, port: 1}]\n    timeout: 2x\n",
			want: `line 4 column 5: upstream "w": timeout: want a duration (2s, 500ms) or a number of seconds, got "2x"`},
		{name: "typ typo", yaml: "upstreams:\n  w:\n    typ: mysq\n    servers: [{host: a, port: 1}]\n",
			want: `line 3 column 5: upstream "w": typ invalid: "mysq"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want %q", err, tt.want)
			}
		})
	}
}

// store-sync's file: errors name the line and the key, never a Go type.
func TestSyncFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ yaml, want string }{
		{"syncs:\n  - target: x\n", "line 2: field target not found"},
		{"resync: soon\n", "line 1: cannot unmarshal !!str `soon`, want a duration such as 5s or 100ms"},
		{"syncs: {a: 1}\n", "want a list"},
	} {
		path := filepath.Join(dir, "sync.yaml")
		os.WriteFile(path, []byte(tt.yaml), 0o644)
		_, err := LoadSync(path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "config.") || strings.Contains(err.Error(), "time.Duration") {
			t.Errorf("%q: got %v; want %q without Go types", tt.yaml, err, tt.want)
		}
	}
}

func TestParseListener(t *testing.T) {
	tests := []struct {
		in   string
		want Listener
	}{
		{in: "3131", want: Listener{Listen: ":3131", Upstream: "3131"}},
		{in: "127.0.0.1:3131", want: Listener{Listen: "127.0.0.1:3131", Upstream: "3131"}},
		{in: "127.0.0.1:3306=mysql", want: Listener{Listen: "127.0.0.1:3306", Upstream: "mysql"}},
		{in: "[::1]:80=web", want: Listener{Listen: "[::1]:80", Upstream: "web"}},
	}
	for _, tt := range tests {
		got, err := ParseListener(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseListener(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// The shipped example must stay valid.
func TestExampleConfig(t *testing.T) {
	f, err := Load("../../examples/slardar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Listeners) != 3 || f.Upstreams["3131"] == nil || len(f.Upstreams["3131"].Cluster.Levels) != 2 {
		t.Fatalf("example: %+v", f)
	}
	if f.Scripts.Dir != "../../examples/lua" {
		t.Fatalf("scripts.dir is not relative to the config file: %q", f.Scripts.Dir)
	}
	entries, err := os.ReadDir(f.Scripts.Dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("example scripts: %v", err)
	}
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(f.Scripts.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := script.Compile(e.Name(), src); err != nil {
			t.Errorf("example script: %v", err)
		}
	}
}

// consistency and window belong to mysql-proxy's listeners only.
func TestListenerConsistencyRefusedElsewhere(t *testing.T) {
	if _, err := Parse([]byte("listeners: [{listen: 1, consistency: session}]")); err == nil || !strings.Contains(err.Error(), "mysql-proxy") {
		t.Fatalf("slardar-proxy config with consistency: %v", err)
	}
}

func TestExampleSNIConfig(t *testing.T) {
	f, err := LoadSNI("../../examples/sni-router.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Routes) != 4 || f.Upstreams["web"] == nil || f.AllowList.Len() != 2 || f.Listen[0] != "127.0.0.1:8443" {
		t.Fatalf("example: %+v", f)
	}
	if _, err := ParseSNI([]byte("routes: {x: {target: \"$sni:443\"}}")); err == nil || !strings.Contains(err.Error(), "allow-list") {
		t.Fatalf("target route without an allow-list: %v", err)
	}
}

// The shipped sni-router example never allows a target that is the router itself.
func TestExampleSNIAllowsNoSelf(t *testing.T) {
	f, err := LoadSNI("../../examples/sni-router.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range f.Listen {
		if f.AllowList.Allows(l) {
			t.Errorf("the example's allow-list allows its own listener %s", l)
		}
	}
}

func TestExampleMySQLConfig(t *testing.T) {
	f, err := LoadMySQL("../../examples/mysql-proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Users) != 0 {
		t.Fatalf("the example config holds users: %+v", f.Users)
	}
	if err := f.AddUsersFile("../../examples/mysql-users.yaml"); err != nil {
		t.Fatal(err)
	}
	if len(f.Listeners) != 1 || f.Listeners[0].Upstream != "db" || len(f.Users) != 2 ||
		f.Upstreams["db"] == nil || f.Upstreams["db_read"] == nil || f.MySQL.Pool.MaxIdle == nil || *f.MySQL.Pool.MaxIdle != 8 {
		t.Fatalf("example: %+v", f)
	}
	if u := f.Users[1]; u.BackendUser != "runner" || u.BackendPassword == "" {
		t.Fatalf("backend account: %+v", u)
	}
	if mode, window := f.ListenerConsistency(f.Listeners[0]); mode != "session" || window != 500*time.Millisecond ||
		f.Upstreams["db_read"].MaxReplicationLag != 5 || f.MySQL.GTIDWaitTimeout != time.Second {
		t.Fatalf("consistency: %s %s %+v", mode, window, f.MySQL)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"users: [{name: a, auth: sha256_password}]", "auth"},
		{"users: [{name: a}, {name: a}]", "twice"},
		{"users: [{name: a, backend_password: x}]", "backend_user"},
		{"mysql: {tls_cert: x}", "go together"},
		{"mysql: {max_packet: lots}", "max_packet"},
		{"mysql: {pool: {max_idel: 3}}", "max_idel"},
		{"mysql: {consistency: strict}", "want one of session, global, window, none"},
		{"listeners: [{listen: 1, upstream: db, consistency: none}, {listen: 2, upstream: db}]", "different consistency"},
		{"upstreams: {db_read: {max_replication_lag: -1, servers: [{host: a, port: 1}]}}", "max_replication_lag"},
		{"upstreams: {db: {servers: [{host: a, port: 1, wieght: 2}]}}", `server 1: unknown field "wieght"`},
		{"upstreams: {db: {tyq: mysql, servers: [{host: a, port: 1}]}}", `unknown field "tyq"`},
	} {
		if _, err := ParseMySQL([]byte(bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error naming %q", bad.yaml, err, bad.want)
		}
	}
}

// TestCheckWarnsOfMissingUpstreams: --check's summary warns of a listener or route whose
// upstream the file does not define (a typo, or one expected over 1895 or store-sync).
func TestCheckWarnsOfMissingUpstreams(t *testing.T) {
	f, err := Parse([]byte("listeners: [{listen: '127.0.0.1:19999', upstream: nosuch}]\nupstreams: {web: {servers: [{host: a, port: 1}]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Summary(), "\n"); !strings.Contains(got, `warning: listener 127.0.0.1:19999 -> upstream "nosuch": not in this file`) {
		t.Fatalf("summary:\n%s", got)
	}
	f, err = Parse([]byte("listeners: [{listen: '127.0.0.1:19999', upstream: web}]\nupstreams: {web: {servers: [{host: a, port: 1}]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Summary(), "\n"); strings.Contains(got, "warning") {
		t.Fatalf("a defined upstream warned:\n%s", got)
	}
}
