package slardarctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// outputs are the formats --output takes.
var outputs = []string{OutputTable, OutputJSON, OutputYAML}

// table is how a command shows a value for people: a header and the value's rows. A listing
// prints its header even without rows; a lookup prints nothing then (its failures say why).
type table[T any] struct {
	header  []string
	rows    func(v T) [][]string
	listing bool
}

// emit is the one place that chooses between JSON or YAML for pipelines and a table for people
// (etcdctl's printer): v as JSON or YAML (nothing for a nil v), or rows under header (without it
// for --no-headers).
func (g *Globals) emit(cmd *cobra.Command, v any, header []string, rows [][]string, listing bool) error {
	switch g.Output {
	case OutputJSON, OutputYAML:
		if v == nil {
			return nil
		}
		if g.Output == OutputYAML {
			return cmdutil.PrintYAML(cmd.OutOrStdout(), v)
		}
		return cmdutil.PrintJSON(cmd.OutOrStdout(), v)
	}
	if len(rows) == 0 && !listing {
		return nil
	}
	if g.NoHeaders {
		header = nil
	}
	return cmdutil.PrintTable(cmd.OutOrStdout(), header, rows)
}

// structured reports whether output is for pipelines (JSON or YAML) rather than a table.
func (g *Globals) structured() bool { return g.Output != OutputTable }

// show prints what read commands got from every proxy, then returns the failures of results as
// the error and exit code. JSON is the one proxy's value when a single --addr was given (so
// pipelines get the same shape as the admin reply), the map by address otherwise; a table gets
// a PROXY column when several proxies are addressed.
func show[T any](g *Globals, cmd *cobra.Command, results []result, byAddr map[string]T, t table[T]) error {
	var rows [][]string
	for _, addr := range g.Addrs {
		if v, ok := byAddr[addr]; ok {
			for _, r := range t.rows(v) {
				rows = append(rows, g.row(addr, r...))
			}
		}
	}
	var v any = byAddr
	if !g.multi() {
		v = nil
		if one, ok := byAddr[g.Addrs[0]]; ok {
			v = one
		}
	}
	// A listing's header says "none" when a proxy answered with nothing; with no answer at all
	// there is nothing to head (the failures say why).
	listing := t.listing && len(byAddr) > 0
	if err := g.emit(cmd, v, g.header(t.header...), rows, listing); err != nil {
		return err
	}
	return failure(results)
}

// report prints the outcome of a change on every proxy.
func (g *Globals) report(cmd *cobra.Command, results []result, what string) error {
	if g.structured() {
		type row struct {
			Addr  string `json:"addr"`
			OK    bool   `json:"ok"`
			Error string `json:"error,omitempty"`
		}
		rows := make([]row, len(results))
		for i, r := range results {
			rows[i] = row{Addr: r.Addr, OK: r.Err == nil}
			if r.Err != nil {
				rows[i].Error = r.Err.Error()
			}
		}
		if err := g.emit(cmd, rows, nil, nil, false); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if r.Err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s on %s\n", what, r.Addr)
			}
		}
	}
	return failure(results)
}

// header and row add the PROXY column when several proxies are addressed.
func (g *Globals) header(cols ...string) []string {
	if g.multi() {
		return append([]string{"PROXY"}, cols...)
	}
	return cols
}

func (g *Globals) row(addr string, cols ...string) []string {
	if g.multi() {
		return append([]string{addr}, cols...)
	}
	return cols
}
