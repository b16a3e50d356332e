package daemon

import (
	"maps"
	"slices"
)

// FromFile remembers what the config file defined, by name (upstreams, routes, scripts), so
// that a reload touches only what the file changed: a name whose definition is new or changed
// is set, a name that left the file is deleted, and a name the file did not change keeps what
// the admin protocol may have set for it since. The zero value remembers nothing.
type FromFile struct{ defs map[string]string } // name → fingerprint of its definition

// Diff compares the definitions of the next config (name → fingerprint, e.g. its JSON) with
// those last committed and returns, sorted, the names to set and the names gone.
func (f *FromFile) Diff(next map[string]string) (set, gone []string) {
	for _, n := range slices.Sorted(maps.Keys(next)) {
		if prev, ok := f.defs[n]; !ok || prev != next[n] {
			set = append(set, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(f.defs)) {
		if _, ok := next[n]; !ok {
			gone = append(gone, n)
		}
	}
	return set, gone
}

// Commit records the definitions of the config now applied.
func (f *FromFile) Commit(next map[string]string) { f.defs = maps.Clone(next) }
