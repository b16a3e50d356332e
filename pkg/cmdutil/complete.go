package cmdutil

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagValues are the values shells complete for the flags every binary names alike.
var flagValues = map[string][]string{
	"log-format": {"text", "json"},
	"log-level":  {"debug", "info", "warn", "error"},
}

// CompleteFlagValues makes the shell completions of every command under root offer the values
// of the flags in flagValues (--log-format <TAB>) and YAML files for --config, unless the command
// registered its own. Main calls it; the generated completion scripts ask the binary at run time.
func CompleteFlagValues(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		register := func(f *pflag.Flag) {
			if _, ok := c.GetFlagCompletionFunc(f.Name); ok {
				return
			}
			if vals, ok := flagValues[f.Name]; ok {
				c.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
			} else if f.Name == "config" {
				c.RegisterFlagCompletionFunc(f.Name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
					return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
				})
			}
		}
		c.LocalNonPersistentFlags().VisitAll(register)
		c.PersistentFlags().VisitAll(register)
	})
}

func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}
