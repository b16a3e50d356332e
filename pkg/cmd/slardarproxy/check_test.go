package slardarproxy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmd/mysqlproxy"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/cmd/snirouter"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

// TestCheck: every daemon's --check passes on its shipped example, printing what would listen
// where, and fails with exit 2 and the line on a broken file, without starting anything.
func TestCheck(t *testing.T) {
	if v, ok := os.LookupEnv("SLARDAR_HTTP_LISTEN"); ok { // TestMain turns the endpoint off
		os.Unsetenv("SLARDAR_HTTP_LISTEN")
		defer os.Setenv("SLARDAR_HTTP_LISTEN", v)
	}
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(broken, []byte("admin:\n  listen: 127.0.0.1:1\nupstreams:\n  u: {servers: [{host: a, port: 1}]}\nlisteners:\n  - lisen: 1\n"), 0o644)
	badScript := t.TempDir()
	os.WriteFile(filepath.Join(badScript, "script.content9.lua"), []byte("x = = 1"), 0o644)
	badScriptCfg := filepath.Join(t.TempDir(), "bad-script.yaml")
	os.WriteFile(badScriptCfg, []byte("scripts: {dir: "+badScript+"}\n"), 0o644)
	for _, tt := range []struct {
		name    string
		cmd     func() *cobra.Command
		example string
		want    []string
		args    []string
	}{
		{"slardar-proxy", slardarproxy.NewCommand, "slardar.yaml", []string{"admin protocol on 127.0.0.1:1895", "listener 127.0.0.1:3131 -> upstream 3131", "http endpoint (/metrics, /livez, /readyz) on 127.0.0.1:1995", "upstream 3131: 3 server(s) in 2 level(s)"}, nil},
		{"mysql-proxy", mysqlproxy.NewCommand, "mysql-proxy.yaml", []string{"admin protocol on 127.0.0.1:1896", "writes to upstream db, reads to db_read (consistency session)", "2 user(s)", "on 127.0.0.1:1996"},
			[]string{"--users-file", "../../../examples/mysql-users.yaml"}},
		{"sni-router", snirouter.NewCommand, "sni-router.yaml", []string{"admin protocol on 127.0.0.1:1897", "listener 127.0.0.1:8443", "4 route(s)", "on 127.0.0.1:1997"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			cmd := tt.cmd()
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			code := cmdutil.Main(cmd, append([]string{"--check", "--config", "../../../examples/" + tt.example}, tt.args...), &errOut)
			if code != 0 || !strings.Contains(out.String(), "config ok") {
				t.Fatalf("--check on the example: %d\n%s%s", code, out.String(), errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("--check output lacks %q:\n%s", w, out.String())
				}
			}
			out.Reset()
			errOut.Reset()
			cmd = tt.cmd()
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			if code := cmdutil.Main(cmd, []string{"--check", "--config", broken}, &errOut); code != cmdutil.ExitBadArgs || !strings.Contains(errOut.String(), "line ") {
				t.Fatalf("--check on a broken file: %d\n%s", code, errOut.String())
			}
		})
	}
	var errOut bytes.Buffer
	if code := cmdutil.Main(slardarproxy.NewCommand(), []string{"--check", "--config", badScriptCfg}, &errOut); code != cmdutil.ExitBadArgs || !strings.Contains(errOut.String(), "script.content9.lua") {
		t.Fatalf("--check with a script that does not compile: %d %s", code, errOut.String())
	}
}
