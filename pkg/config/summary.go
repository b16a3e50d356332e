package config

import (
	"fmt"
	"maps"
	"slices"

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

// missing is --check's warning for a reference to an upstream the file does not define: the
// daemon starts, and the listener or route refuses connections until that upstream arrives
// over the admin protocol or from store-sync (a typo never does).
func (c *Common) missing(what, upstream string) []string {
	if _, ok := c.Upstreams[upstream]; ok || upstream == "" {
		return nil
	}
	return []string{fmt.Sprintf("warning: %s -> upstream %q: not in this file; until it arrives over the admin protocol or from store-sync, connections are refused", what, upstream)}
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
		lines = append(lines, f.missing("listener "+l.Listen, l.Upstream)...)
	}
	if f.Scripts.Dir != "" {
		lines = append(lines, "scripts from "+f.Scripts.Dir)
	}
	return lines
}

// Check compiles the scripts of the scripts directory, which loading the file does not
// (--check; a start compiles them when it applies the file).
func (f *File) Check() error {
	_, err := script.ReadDir(f.Scripts.Dir)
	return err
}

// Summary adds the users and each listener's consistency.
func (f *MySQLFile) Summary() []string {
	lines := f.Common.Summary()
	for _, l := range f.Listeners {
		mode, _ := f.ListenerConsistency(l)
		lines = append(lines, fmt.Sprintf("listener %s -> writes to upstream %s, reads to %s_read (consistency %s)", l.Listen, l.Upstream, l.Upstream, mode))
		lines = append(lines, f.missing("listener "+l.Listen, l.Upstream)...)
		if _, ok := f.Upstreams[l.Upstream+"_read"]; !ok {
			lines = append(lines, fmt.Sprintf("note: listener %s: no upstream %s_read in this file: reads go to the primary until one arrives", l.Listen, l.Upstream))
		}
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
	for _, pattern := range slices.Sorted(maps.Keys(f.Routes)) {
		lines = append(lines, f.missing("route "+pattern, f.Routes[pattern].Upstream)...)
	}
	return lines
}
