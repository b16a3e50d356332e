// Command gen-docs writes the man pages and shell completions of every binary from their cobra
// commands: man/*.1 and completions/{bash,zsh,fish}/. Run by `make docs`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/slardar-go/slardar/pkg/ctl"
	"github.com/slardar-go/slardar/pkg/proxyd"
	"github.com/slardar-go/slardar/pkg/snid"
	"github.com/slardar-go/slardar/pkg/syncd"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen-docs:", err)
		os.Exit(1)
	}
}

func run() error {
	for _, dir := range []string{"man", "completions/bash", "completions/zsh", "completions/fish"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for _, root := range []*cobra.Command{proxyd.NewCommand(), ctl.NewCommand(), snid.NewCommand(), syncd.NewCommand()} {
		root.DisableAutoGenTag = true
		header := &doc.GenManHeader{Title: root.Name(), Section: "1", Source: "slardar", Manual: "Slardar Manual"}
		if err := doc.GenManTree(root, header, "man"); err != nil {
			return fmt.Errorf("man pages of %s: %w", root.Name(), err)
		}
		name := root.Name()
		if err := root.GenBashCompletionFileV2(filepath.Join("completions/bash", name), true); err != nil {
			return err
		}
		if err := root.GenZshCompletionFile(filepath.Join("completions/zsh", "_"+name)); err != nil {
			return err
		}
		if err := root.GenFishCompletionFile(filepath.Join("completions/fish", name+".fish"), true); err != nil {
			return err
		}
	}
	return nil
}
