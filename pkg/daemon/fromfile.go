package daemon

import (
	"iter"
	"slices"
)

// FromFile remembers which names (upstreams, routes, scripts) the config file defined, so that
// a reload deletes those that left the file and leaves alone those set over the admin protocol.
// The zero value remembers nothing.
type FromFile struct{ names map[string]bool }

// Replace records the names of the config now applied and returns, sorted, those of the
// previous one that are gone from it.
func (f *FromFile) Replace(names iter.Seq[string]) (gone []string) {
	next := make(map[string]bool)
	for n := range names {
		next[n] = true
	}
	for n := range f.names {
		if !next[n] {
			gone = append(gone, n)
		}
	}
	f.names = next
	slices.Sort(gone)
	return gone
}
