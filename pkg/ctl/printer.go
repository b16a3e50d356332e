package ctl

import (
	"io"

	"github.com/slardar-go/slardar/pkg/cli"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// printPerProxy writes byAddr as JSON: the one proxy's value when a single --addr was given
// (so pipelines get the same shape as the admin reply), the map by address otherwise.
func printPerProxy[T any](g *Globals, w io.Writer, byAddr map[string]T) error {
	if !g.multi() {
		v, ok := byAddr[g.Addrs[0]]
		if !ok {
			return nil // the failure is reported by the caller
		}
		return cli.PrintJSON(w, v)
	}
	return cli.PrintJSON(w, byAddr)
}
