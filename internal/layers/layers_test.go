// Package layers holds the test that keeps README's layering true: a package of pkg/ imports
// only packages of lower layers.
package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/slardar-go/slardar/"

// rank is each package's layer, as drawn in README's Layout section (higher imports lower).
var rank = map[string]int{
	"pkg/accept": 0, "pkg/backoff": 0, "pkg/checkups": 0, "pkg/sni": 0, "pkg/version": 0, "pkg/cmdutil": 0,
	"pkg/admin": 0, "pkg/store": 0, // each imports one leaf of its own layer (accept, backoff)
	"pkg/metrics": 0, "pkg/units": 0,
	"pkg/l4":         1,
	"pkg/script":     2,
	"pkg/reconcile":  3,
	"pkg/config":     4,
	"pkg/mysql/wire": 0, "pkg/mysql/sqlclass": 0, "pkg/mysql/digest": 0, "pkg/mysql/rules": 0,
	"pkg/mysql/front":   1,
	"pkg/mysql/backend": 2,
	"pkg/mysql/session": 3,
	"pkg/lifecycle":     5, "pkg/syncer": 5,
	"pkg/daemon":           6,
	"pkg/cmd/slardarproxy": 7, "pkg/cmd/snirouter": 7, "pkg/cmd/storesync": 7, "pkg/cmd/slardarctl": 7, "pkg/cmd/mysqlproxy": 7,
}

// within are the imports allowed inside layer 0.
var within = map[string]bool{"pkg/admin>pkg/accept": true, "pkg/store>pkg/backoff": true}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"pkg/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(strings.ReplaceAll(line, module, ""))
		pkg := fields[0]
		r, ok := rank[pkg]
		if !ok {
			t.Errorf("%s has no layer: add it to README's Layout and to rank", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			ir, local := rank[imp]
			if !local && strings.HasPrefix(imp, "pkg/") {
				t.Errorf("%s imports %s, which has no layer", pkg, imp)
				continue
			}
			if local && ir >= r && !within[pkg+">"+imp] {
				t.Errorf("%s (layer %d) imports %s (layer %d)", pkg, r, imp, ir)
			}
		}
	}
}
