package cmdutil

import (
	"errors"
	"io"
	"testing"

	"github.com/spf13/cobra"
)

// TestExitCodes: what cobra refuses (an unknown flag or command, arguments a command does not
// take, a required flag missing) is a usage error whatever its wording; what a command returns
// is exit 1 unless it carries a code.
func TestExitCodes(t *testing.T) {
	root := func() *cobra.Command {
		r := &cobra.Command{Use: "tool"}
		r.AddCommand(&cobra.Command{Use: "fail", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error {
			return errors.New("accepts nothing: a message that reads like cobra's")
		}})
		r.AddCommand(&cobra.Command{Use: "code", RunE: func(*cobra.Command, []string) error {
			return WithCode(ExitUnreachable, errors.New("down"))
		}})
		need := &cobra.Command{Use: "need", RunE: func(*cobra.Command, []string) error { return nil }}
		need.Flags().String("name", "", "")
		need.MarkFlagRequired("name")
		r.AddCommand(need)
		return r
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"fail"}, ExitError},
		{[]string{"fail", "extra"}, ExitBadArgs},
		{[]string{"fail", "--nope"}, ExitBadArgs},
		{[]string{"nosuch"}, ExitBadArgs},
		{[]string{"need"}, ExitBadArgs},
		{[]string{"need", "--name", "x"}, ExitOK},
		{[]string{"code"}, ExitUnreachable},
	} {
		if got := Main(root(), c.args, io.Discard); got != c.want {
			t.Errorf("%v: exit %d, want %d", c.args, got, c.want)
		}
	}
}
