package cmdutil_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func TestCompleteFlagValues(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "serve", "--log-format", ""}, "text\njson\n:4\n"},
		{[]string{"__complete", "serve", "--log-level", ""}, "debug\ninfo\nwarn\nerror\n:4\n"},
		{[]string{"__complete", "serve", "--config", ""}, "yaml\nyml\n:8\n"},
		{[]string{"__complete", "serve", "--output", ""}, "mine\n:4\n"}, // the command's own wins
	} {
		root := &cobra.Command{Use: "d"}
		serve := &cobra.Command{Use: "serve", RunE: func(*cobra.Command, []string) error { return nil }}
		serve.Flags().String("log-format", "", "")
		serve.Flags().String("log-level", "", "")
		serve.Flags().String("config", "", "")
		serve.Flags().String("output", "", "")
		serve.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"mine"}, cobra.ShellCompDirectiveNoFileComp))
		root.AddCommand(serve)
		var out bytes.Buffer
		root.SetOut(&out)
		cmdutil.Main(root, tt.args, &out)
		if !strings.HasPrefix(out.String(), tt.want) {
			t.Errorf("%q: %q, want %q", tt.args, out.String(), tt.want)
		}
	}
}
