package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestMain lets a test run the generator in a child process with its own environment.
func TestMain(m *testing.M) {
	if out := os.Getenv("GEN_DOCS_OUT"); out != "" {
		if err := run(out); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// generate runs the generator in a child process with env added and returns its output dir.
func generate(t *testing.T, env ...string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), "GEN_DOCS_OUT="+out), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-docs: %v\n%s", err, b)
	}
	return out
}

// The pages and completions are a pure function of the tree: generated years away, in another
// time zone, with SOURCE_DATE_EPOCH set (which cobra would otherwise honour), they equal the
// committed files byte for byte.
func TestOutputDoesNotDependOnTheClock(t *testing.T) {
	for _, env := range [][]string{
		{"SOURCE_DATE_EPOCH=4102444800", "TZ=Pacific/Kiritimati"}, // 2100-01-01
		{"SOURCE_DATE_EPOCH=0", "TZ=America/Adak"},
	} {
		out := generate(t, env...)
		for _, dir := range []string{"man", "completions/bash", "completions/zsh", "completions/fish"} {
			compareDirs(t, filepath.Join(out, dir), filepath.Join("..", "..", "..", dir))
		}
	}
}

func compareDirs(t *testing.T, got, want string) {
	t.Helper()
	names := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	g, w := names(got), names(want)
	if strings.Join(g, " ") != strings.Join(w, " ") {
		t.Fatalf("%s: generated files %v, committed %v", want, g, w)
	}
	for _, n := range g {
		a, _ := os.ReadFile(filepath.Join(got, n))
		b, _ := os.ReadFile(filepath.Join(want, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from a fresh generation (run make docs)", filepath.Join(want, n))
		}
	}
}

// Every <placeholder> of a command's text or flag usages is in its man page, not eaten as HTML.
func TestPlaceholdersRender(t *testing.T) {
	out := generate(t)
	seen := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		page, err := os.ReadFile(filepath.Join(out, "man", strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"))
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{c.Long}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { texts = append(texts, f.Usage) })
		for _, text := range texts {
			for _, m := range placeholder.FindAllString(text, -1) {
				seen++
				if !bytes.Contains(page, []byte(m)) {
					t.Errorf("man page of %q lost %s", c.CommandPath(), m)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, r := range roots() {
		walk(r)
	}
	if seen == 0 {
		t.Fatal("no placeholder found: the test checks nothing")
	}
}
