// Command gen-docs writes the man pages and shell completions of every binary from their cobra
// commands: man/*.1 and completions/{bash,zsh,fish}/, and slardar-config(5) from the example
// configuration files. Run by `make docs`.
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
	"strings"

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
		if err := addSections(filepath.Join(out, "man", name+".1"), name); err != nil {
			return err
		}
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
	return configPage(filepath.Join(out, "man", "slardar-config.5"), date.Format("Jan 2006"))
}

// configPage writes slardar-config(5), the configuration files' page: what every file shares
// (strict YAML, positions in errors, durations, flags over the file, reload and --check) and,
// verbatim, each daemon's example, whose comments document every key (so the page is exactly
// as current as the examples, which tests load).
func configPage(page, date string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".nh\n.TH \"SLARDAR-CONFIG\" \"5\" \"%s\" \"slardar\" \"Slardar Manual\"\n", date)
	b.WriteString(`.SH NAME
slardar-config \- the configuration files of slardar-proxy, mysql-proxy, sni-router and store-sync
.SH SYNOPSIS
`)
	for _, name := range []string{"slardar-proxy", "mysql-proxy", "sni-router", "store-sync"} {
		fmt.Fprintf(&b, ".B %s\n.br\n", daemonFiles[name][0])
	}
	b.WriteString(`.SH DESCRIPTION
Each daemon reads one YAML file, given with \fB--config\fP (the systemd units name the files above;
\fBmake install\fP puts the examples there). Decoding is strict: an unknown or misplaced key is an
error naming the file, the line and column and the key's path (\fBline 4: listeners[1].consistency: ...\fP),
never a Go type. Durations are written \fB2s\fP, \fB500ms\fP or \fB1h\fP; an upstream's timeouts may
also be plain numbers of seconds, as in the original's JSON. Sizes are \fB1m\fP, \fB64k\fP.
.PP
Flags that are set (and their SLARDAR_ environment variables) override the file. SIGHUP reads the
file again and applies it all or nothing; what was set over the admin protocol stays. \fB--check\fP
checks the file and the flags, prints what would listen where (with warnings for references that
may arrive at run time) and exits 0, or 2 with the error.
.PP
The proxies share \fBadmin\fP, \fBhttp\fP, \fBlog\fP, \fBcheckups\fP and \fBupstreams\fP (the
lua-resty-checkups model, one entry per upstream; the short form \fB{servers: [...]}\fP is one level).
The examples below are the files of the source tree's examples/ directory, every key commented.
`)
	for _, name := range []string{"slardar-proxy", "mysql-proxy", "sni-router", "store-sync"} {
		ex := daemonFiles[name][1]
		data, err := os.ReadFile(filepath.Join(root, ex))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, ".SH %s\n\\fB%s\\fP (%s):\n.PP\n.nf\n", strings.ToUpper(name), daemonFiles[name][0], ex)
		for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			l = strings.ReplaceAll(l, `\`, `\e`)
			if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
				l = `\&` + l
			}
			b.WriteString(l + "\n")
		}
		b.WriteString(".fi\n")
	}
	b.WriteString(".SH SEE ALSO\n\\fBslardar-proxy(1)\\fP, \\fBmysql-proxy(1)\\fP, \\fBsni-router(1)\\fP, \\fBstore-sync(1)\\fP, \\fBslardarctl(1)\\fP\n")
	return os.WriteFile(page, []byte(b.String()), 0o644)
}

// moduleRoot is the directory of go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
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

// daemonFiles is each daemon's config file as the systemd units name it, and the example it
// starts from.
var daemonFiles = map[string][2]string{
	"slardar-proxy": {"/etc/slardar/slardar.yaml", "examples/slardar.yaml"},
	"mysql-proxy":   {"/etc/slardar/mysql-proxy.yaml", "examples/mysql-proxy.yaml"},
	"sni-router":    {"/etc/slardar/sni-router.yaml", "examples/sni-router.yaml"},
	"store-sync":    {"/etc/slardar/store-sync.yaml", "examples/store-sync.yaml"},
}

// addSections adds to a binary's page what cobra does not write: FILES, EXIT STATUS and the
// other binaries under SEE ALSO.
func addSections(page, name string) error {
	b, err := os.ReadFile(page)
	if err != nil {
		return err
	}
	var add strings.Builder
	if f, ok := daemonFiles[name]; ok {
		fmt.Fprintf(&add, ".SH FILES\n.TP\n\\fB%s\\fP\nThe configuration file the systemd unit deploy/systemd/%s.service starts with (--config); every key is documented in the source tree's %s. SIGHUP re-reads it; --check checks it.\n.TP\n\\fB/etc/slardar/%s.env\\fP\nOptional environment file of the unit: SLARDAR_ followed by a flag's name sets the flag.\n", f[0], name, f[1], name)
		add.WriteString(".SH EXIT STATUS\n0 after a clean stop (SIGINT, SIGTERM) or a --check that passed; 1 when serving failed; 2 for bad flags or a configuration that does not load or check.\n")
	} else {
		add.WriteString(".SH EXIT STATUS\n0 ok; 1 an error, or a name a proxy does not have; 2 bad arguments or input; 3 a proxy could not be reached (or the address is not an admin port); 4 a proxy answered with another error.\n")
	}
	var others []string
	for _, o := range []string{"slardar-proxy", "mysql-proxy", "sni-router", "store-sync", "slardarctl"} {
		if o != name {
			others = append(others, fmt.Sprintf("\\fB%s(1)\\fP", o))
		}
	}
	if _, daemon := daemonFiles[name]; daemon {
		others = append(others, "\\fBslardar-config(5)\\fP")
	}
	text := string(b)
	if i := strings.Index(text, ".SH SEE ALSO\n"); i >= 0 {
		rest := strings.TrimRight(text[i+len(".SH SEE ALSO\n"):], "\n")
		text = text[:i] + add.String() + ".SH SEE ALSO\n" + rest + ", " + strings.Join(others, ", ") + "\n"
	} else {
		text = strings.TrimRight(text, "\n") + "\n" + add.String() + ".SH SEE ALSO\n" + strings.Join(others, ", ") + "\n"
	}
	return os.WriteFile(page, []byte(text), 0o644)
}
