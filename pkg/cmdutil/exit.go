// Package cmdutil is what every binary's command line shares (gh's pkg/cmdutil): named exit
// codes and the one place that turns an error into a message and an exit code, flags read from
// the environment by one rule, command groups that refuse unknown subcommands, and the table and
// JSON printers.
package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitError       = 1 // anything else
	ExitBadArgs     = 2 // bad flags, arguments, input or configuration files
	ExitUnreachable = 3 // a server could not be reached
	ExitReplyError  = 4 // a server answered with an ERROR reply
)

// CodeError carries an exit code with an error.
type CodeError struct {
	Code int
	Err  error
}

func (e *CodeError) Error() string { return e.Err.Error() }
func (e *CodeError) Unwrap() error { return e.Err }

// WithCode wraps err (nil stays nil) so Main exits with code.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &CodeError{Code: code, Err: err}
}

// Main runs the root command with flags also taken from the environment (see FlagsFromEnv) and
// maps the outcome to an exit code.
func Main(root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		//lint:ignore ST1005 cobra's own wording, as every other usage error reads
		return WithCode(ExitBadArgs, fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath()))
	})
	prerun := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := FlagsFromEnv(cmd); err != nil {
			return WithCode(ExitBadArgs, err)
		}
		if prerun != nil {
			return prerun(cmd, args)
		}
		return nil
	}
	markRunErrors(root)
	CompleteFlagValues(root)
	_, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	// An error the commands' own code returned is theirs (exit 1 unless it carries a code);
	// any other is cobra's: an unknown command, arguments or flags it refused.
	code := ExitBadArgs
	var ce *CodeError
	var re *runError
	switch {
	case errors.As(err, &ce):
		code = ce.Code
	case errors.As(err, &re):
		code = ExitError
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	return code
}

// runError is an error a command's own code returned (RunE, PersistentPreRunE), as opposed to
// one cobra returned while parsing the command line.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// markRunErrors wraps the RunE and PersistentPreRunE of c and its subcommands so that the
// errors they return are known as theirs.
func markRunErrors(c *cobra.Command) {
	mark := func(f func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
		if f == nil {
			return nil
		}
		return func(cmd *cobra.Command, args []string) error {
			if err := f(cmd, args); err != nil {
				return &runError{err}
			}
			return nil
		}
	}
	c.RunE, c.PersistentPreRunE = mark(c.RunE), mark(c.PersistentPreRunE)
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// Group makes cmd, a command that only holds subcommands, refuse an unknown subcommand as a
// usage error (exit 2) with cobra's wording, where cobra itself prints the help and exits 0 for
// any command below the root. Without arguments it prints its help.
func Group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only on its own path
		}
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
		}
		//lint:ignore ST1005 cobra's own wording, as every other usage error reads
		return WithCode(ExitBadArgs, fmt.Errorf("%s\nSee '%s --help'.", msg, c.CommandPath()))
	}
	return cmd
}
