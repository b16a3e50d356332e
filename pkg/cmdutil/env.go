package cmdutil

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flags come from the environment by one rule, applied to the flags themselves, so that every
// binary keeps its options struct as the one place its settings are read (spf13/viper was tried
// for this: it wants its own getters instead of the options structs, and it lower-cases keys, so
// the config files, whose upstream names are case-sensitive, could not go through it either).

// EnvPrefix starts the environment variable of every flag of every binary.
const EnvPrefix = "SLARDAR_"

// EnvHelp documents the rule once, for the binaries' long help.
const EnvHelp = `Every flag can also be set in the environment: SLARDAR_ and the flag's name in capitals with
dashes as underscores (--admin-listen is SLARDAR_ADMIN_LISTEN, --token is SLARDAR_TOKEN);
repeatable flags take a comma-separated list. A flag on the command line wins over the
environment, and both win over the config file.`

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// aliasAnnotation lists a flag's former names (see Alias).
const aliasAnnotation = "slardar_aliases"

// Alias makes old, a former name of the flag name, keep working: on the command line (hidden
// from help) and in the environment (EnvName(old), when EnvName(name) is not set).
func Alias(fs *pflag.FlagSet, old, name string) {
	prev := fs.GetNormalizeFunc()
	fs.SetNormalizeFunc(func(f *pflag.FlagSet, n string) pflag.NormalizedName {
		if n == old {
			n = name
		}
		return prev(f, n)
	})
	if f := fs.Lookup(name); f != nil {
		if f.Annotations == nil {
			f.Annotations = map[string][]string{}
		}
		f.Annotations[aliasAnnotation] = append(f.Annotations[aliasAnnotation], old)
	}
}

// FlagsFromEnv sets every flag of cmd (its own and those it inherits) that the command line did
// not set from its environment variable, so that the rule of EnvHelp holds for every binary.
// Set this way, a flag counts as set (Changed) and overrides the config file like a flag.
func FlagsFromEnv(cmd *cobra.Command) error {
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		val, ok := os.LookupEnv(EnvName(f.Name))
		for _, old := range f.Annotations[aliasAnnotation] {
			if !ok {
				val, ok = os.LookupEnv(EnvName(old))
			}
		}
		if !ok {
			return
		}
		vals := []string{val}
		if f.Value.Type() == "stringArray" {
			vals = strings.Split(val, ",")
		}
		for _, v := range vals {
			if err := cmd.Flags().Set(f.Name, strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", EnvName(f.Name), val, err))
				return
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}
