package daemon

import (
	"slices"
	"testing"
)

func TestFromFile(t *testing.T) {
	var f FromFile
	step := func(next map[string]string, wantSet, wantGone []string) {
		t.Helper()
		set, gone := f.Diff(next)
		if !slices.Equal(set, wantSet) || !slices.Equal(gone, wantGone) {
			t.Fatalf("Diff(%v) = set %v, gone %v; want %v, %v", next, set, gone, wantSet, wantGone)
		}
		f.Commit(next)
	}
	step(map[string]string{"a": "1", "b": "2", "c": "3"}, []string{"a", "b", "c"}, nil)
	step(map[string]string{"a": "1", "b": "2", "c": "3"}, nil, nil) // unchanged file: nothing touched
	step(map[string]string{"b": "2", "c": "4"}, []string{"c"}, []string{"a"})
	step(map[string]string{}, nil, []string{"b", "c"})
}
