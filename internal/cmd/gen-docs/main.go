// Command gen-docs writes the man pages and shell completions of every binary from their cobra
// commands: man/*.1 and completions/{bash,zsh,fish}/. Run by `make docs`.
//
// The output depends on the source tree only: the man pages carry version.ManualDate, never the
// clock, so `make docs-check` does not fail when a month turns.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/slardar-go/slardar/pkg/cmd/mysqlproxy"
	"github.com/slardar-go/slardar/pkg/cmd/slardarctl"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/cmd/snirouter"
	"github.com/slardar-go/slardar/pkg/cmd/storesync"
	"github.com/slardar-go/slardar/pkg/version"
)

func main() {
	out := flag.String("out", ".", "directory to write man/ and completions/ under")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen-docs:", err)
		os.Exit(1)
	}
}

// roots are the commands documented, one per binary.
func roots() []*cobra.Command {
	return []*cobra.Command{slardarproxy.NewCommand(), mysqlproxy.NewCommand(), slardarctl.NewCommand(), snirouter.NewCommand(), storesync.NewCommand()}
}

func run(out string) error {
	for _, dir := range []string{"man", "completions/bash", "completions/zsh", "completions/fish"} {
		if err := os.MkdirAll(filepath.Join(out, dir), 0o755); err != nil {
			return err
		}
	}
	date := version.ManualDate
	for _, root := range roots() {
		root.DisableAutoGenTag = true
		escapeForMan(root)
		header := &doc.GenManHeader{Title: root.Name(), Section: "1", Source: "slardar", Manual: "Slardar Manual", Date: &date}
		if err := doc.GenManTree(root, header, filepath.Join(out, "man")); err != nil {
			return fmt.Errorf("man pages of %s: %w", root.Name(), err)
		}
		name := root.Name()
		if err := root.GenBashCompletionFileV2(filepath.Join(out, "completions/bash", name), true); err != nil {
			return err
		}
		if err := root.GenZshCompletionFile(filepath.Join(out, "completions/zsh", "_"+name)); err != nil {
			return err
		}
		if err := root.GenFishCompletionFile(filepath.Join(out, "completions/fish", name+".fish"), true); err != nil {
			return err
		}
	}
	return nil
}

// placeholder is a <word> in help text, which the markdown renderer behind the man pages takes
// for an HTML tag and drops ("AUTH token <token>" became "AUTH token ").
var placeholder = regexp.MustCompile(`<([A-Za-z0-9_.:-]*)>`)

// escapeForMan backslash-escapes the placeholders of every command's short and long text and of
// every flag usage, so they render as written. Examples are code blocks and are left alone.
// Only the commands built for the pages are changed; the binaries' --help is untouched.
func escapeForMan(cmd *cobra.Command) {
	esc := func(s string) string { return placeholder.ReplaceAllString(s, `\<$1\>`) }
	cmd.Short, cmd.Long = esc(cmd.Short), esc(cmd.Long)
	for _, fs := range []*pflag.FlagSet{cmd.LocalFlags(), cmd.PersistentFlags()} {
		fs.VisitAll(func(f *pflag.Flag) { f.Usage = esc(f.Usage) })
	}
	for _, c := range cmd.Commands() {
		escapeForMan(c)
	}
}
