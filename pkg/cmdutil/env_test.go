package cmdutil

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The one rule: SLARDAR_ + the flag's name; a command-line flag wins; an old name keeps working
// on the command line and in the environment; repeatable flags take a comma-separated list.
func TestFlagsFromEnv(t *testing.T) {
	type got struct {
		listen, token []string
		level         string
		once          bool
	}
	run := func(args ...string) (got, int, string) {
		var g got
		var tok, lv string
		cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error {
			g.token, g.level = []string{tok}, lv
			return nil
		}}
		f := cmd.Flags()
		f.StringArrayVar(&g.listen, "listen", nil, "")
		f.StringVar(&tok, "token", "", "")
		Alias(f, "admin-token", "token")
		f.StringVar(&lv, "log-level", "info", "")
		f.BoolVar(&g.once, "once", false, "")
		var stderr bytes.Buffer
		code := Main(cmd, args, &stderr)
		return g, code, stderr.String()
	}
	t.Setenv("SLARDAR_LISTEN", "127.0.0.1:1,127.0.0.1:2")
	t.Setenv("SLARDAR_LOG_LEVEL", "debug")
	t.Setenv("SLARDAR_ADMIN_TOKEN", "old")
	t.Setenv("SLARDAR_ONCE", "true")
	g, code, _ := run()
	if code != 0 || strings.Join(g.listen, " ") != "127.0.0.1:1 127.0.0.1:2" || g.level != "debug" || g.token[0] != "old" || !g.once {
		t.Fatalf("from the environment: %+v (exit %d)", g, code)
	}
	t.Setenv("SLARDAR_TOKEN", "new")
	if g, _, _ := run("--log-level", "warn"); g.level != "warn" || g.token[0] != "new" {
		t.Fatalf("flag over env, new name over old: %+v", g)
	}
	if g, _, _ := run("--admin-token", "cli"); g.token[0] != "cli" {
		t.Fatalf("old flag name: %+v", g)
	}
	t.Setenv("SLARDAR_ONCE", "sometimes")
	if _, code, stderr := run(); code != ExitBadArgs || !strings.Contains(stderr, "SLARDAR_ONCE") {
		t.Fatalf("bad value: exit %d, %q", code, stderr)
	}
}
