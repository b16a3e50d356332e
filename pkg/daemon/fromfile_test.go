package daemon

import (
	"maps"
	"slices"
	"testing"
)

func TestFromFile(t *testing.T) {
	var f FromFile
	if gone := f.Replace(maps.Keys(map[string]int{"a": 1, "b": 2, "c": 3})); gone != nil {
		t.Fatalf("first config: %v gone", gone)
	}
	if gone := f.Replace(maps.Keys(map[string]int{"b": 2})); !slices.Equal(gone, []string{"a", "c"}) {
		t.Fatalf("gone: %v, want [a c]", gone)
	}
	if gone := f.Replace(maps.Keys(map[string]int{})); !slices.Equal(gone, []string{"b"}) {
		t.Fatalf("gone: %v, want [b]", gone)
	}
}
