// Package cli holds what every binary's main shares: named exit codes and the one place that
// turns an error into a message on stderr and an exit code.
package cli

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
	ExitBadArgs     = 2 // bad flags, arguments or input files
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

// Silent is an error whose message was already printed; Main only exits with its code.
var Silent = errors.New("")

// Main runs the root command and maps the outcome to an exit code.
func Main(root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return WithCode(ExitBadArgs, fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath()))
	})
	cmd, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ce *CodeError
	if errors.As(err, &ce) {
		code = ce.Code
	} else if cmd != nil && isUsageError(err) {
		code = ExitBadArgs
	}
	if !errors.Is(err, Silent) {
		fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	}
	return code
}

// isUsageError recognises cobra's own argument errors.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "invalid argument", "unknown flag", "unknown shorthand", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
