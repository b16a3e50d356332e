package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slardar-go/slardar/pkg/script"
)

// Summary is what --check prints of the common part: where the admin protocol and the HTTP
// endpoint listen, and the upstreams the file defines.
func (c *Common) Summary() []string {
	lines := []string{"admin protocol on " + c.Admin.Listen + tokenNote(c.Admin.Token)}
	if c.HTTP.Listen == nil || *c.HTTP.Listen == "" {
		lines = append(lines, "http endpoint off")
	} else {
		lines = append(lines, "http endpoint (/metrics, /livez, /readyz) on "+*c.HTTP.Listen)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		n := 0
		for _, l := range c.Upstreams[name].Cluster.Levels {
			n += len(l.Servers)
		}
		lines = append(lines, fmt.Sprintf("upstream %s: %d server(s) in %d level(s)", name, n, len(c.Upstreams[name].Cluster.Levels)))
	}
	return lines
}

func tokenNote(token string) string {
	if token != "" {
		return " (token required)"
	}
	return ""
}

// Summary adds the listeners and the scripts directory.
func (f *File) Summary() []string {
	lines := f.Common.Summary()
	for _, l := range f.Listeners {
		lines = append(lines, fmt.Sprintf("listener %s -> upstream %s", l.Listen, l.Upstream))
	}
	if f.Scripts.Dir != "" {
		lines = append(lines, "scripts from "+f.Scripts.Dir)
	}
	return lines
}

// Check compiles the scripts of the scripts directory, which loading the file does not.
func (f *File) Check() error {
	if f.Scripts.Dir == "" {
		return nil
	}
	entries, err := os.ReadDir(f.Scripts.Dir)
	if err != nil {
		return fmt.Errorf("scripts.dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".lua") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(f.Scripts.Dir, e.Name()))
		if err != nil {
			return fmt.Errorf("scripts.dir: %w", err)
		}
		if _, err := script.Compile(e.Name(), src); err != nil {
			return fmt.Errorf("scripts.dir: %w", err)
		}
	}
	return nil
}

// Summary adds the users and each listener's consistency.
func (f *MySQLFile) Summary() []string {
	lines := f.Common.Summary()
	for _, l := range f.Listeners {
		mode, _ := f.ListenerConsistency(l)
		lines = append(lines, fmt.Sprintf("listener %s -> writes to upstream %s, reads to %s_read (consistency %s)", l.Listen, l.Upstream, l.Upstream, mode))
	}
	lines = append(lines, fmt.Sprintf("%d user(s)", len(f.Users)))
	if f.Scripts.Dir != "" {
		lines = append(lines, "scripts from "+f.Scripts.Dir)
	}
	return lines
}

// Summary adds the data listeners and the routes.
func (f *SNIFile) Summary() []string {
	lines := f.Common.Summary()
	for _, l := range f.Listen {
		lines = append(lines, "listener "+l)
	}
	lines = append(lines, fmt.Sprintf("%d route(s), %d allow-list entr(ies)", len(f.Routes), f.AllowList.Len()))
	return lines
}
