package ctl

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cli"

	"github.com/slardar-go/slardar/pkg/checkups"
)

func newUpstreamCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "upstream",
		Aliases: []string{"upstreams", "ups"},
		Short:   "Put, get, list and delete upstreams",
	}
	cmd.AddCommand(newUpstreamPut(g), newUpstreamGet(g), newUpstreamList(g), newUpstreamDelete(g))
	return cli.Group(cmd)
}

func newUpstreamPut(g *Globals) *cobra.Command {
	cmd := newPutCommand(g, "upstream", "NAME")
	cmd.Short = "Create or replace an upstream (PUT upstream NAME)"
	cmd.Long = `Sends the upstream in FILE (JSON or YAML; - for stdin) as PUT upstream NAME.

A body with "cluster" replaces the whole upstream; a body with only "servers" replaces the
servers of its first level and keeps everything else (the original's rule).`
	cmd.Example = `  slardarctl upstream put 3131 -f - <<'EOF'
  {"typ":"mysql","user":"runner","pass":"runner123456","name":"upyun",
   "cluster":[{"servers":[{"host":"127.0.0.1","port":3306},{"host":"127.0.0.1","port":3307}]}]}
  EOF`
	return cmd
}

// newPutCommand is "put ARG -f FILE|-": the file's JSON or YAML sent as PUT <topic> ARG to
// every proxy.
func newPutCommand(g *Globals, topic, arg string) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:  "put " + arg + " -f FILE|-",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			body, err := toJSON(data, file)
			if err != nil {
				return err
			}
			return g.report(cmd, g.do(cmd.Context(), "PUT", topic, args[0], body), topic+" "+args[0]+" put")
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", topic+" JSON or YAML file, - for stdin")
	cmd.MarkFlagRequired("file")
	return cmd
}

func newUpstreamDelete(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete an upstream (DELETE upstream NAME)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.report(cmd, g.do(cmd.Context(), "DELETE", "upstream", args[0], nil), "upstream "+args[0]+" deleted")
		},
	}
}

// report prints the outcome of a change on every proxy.
func (g *Globals) report(cmd *cobra.Command, results []result, what string) error {
	if g.Output == OutputJSON {
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
		if err := cli.PrintJSON(cmd.OutOrStdout(), rows); err != nil {
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

// info fetches GET upstream info from every proxy.
func (g *Globals) info(cmd *cobra.Command) (map[string]map[string]*checkups.Upstream, []result, error) {
	results := g.do(cmd.Context(), "GET", "upstream", "info", nil)
	return decodeEach[map[string]*checkups.Upstream](results, "upstream info"), results, nil
}

func newUpstreamGet(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one upstream's config (from GET upstream info)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			infos, results, _ := g.info(cmd)
			for i, r := range results {
				if r.Err == nil && infos[r.Addr][name] == nil {
					results[i].Err = notFound("upstream", name, r.Addr)
				}
			}
			if g.Output == OutputJSON {
				byAddr := map[string]*checkups.Upstream{}
				for addr, m := range infos {
					if m[name] != nil {
						byAddr[addr] = m[name]
					}
				}
				if err := printPerProxy(g, cmd.OutOrStdout(), byAddr); err != nil {
					return err
				}
				return failure(results)
			}
			var rows [][]string
			for _, addr := range g.Addrs {
				up := infos[addr][name]
				if up == nil {
					continue
				}
				for li, l := range up.Cluster.Levels {
					level := strconv.Itoa(li + 1)
					if l.Name != "" {
						level = l.Name
					}
					for _, s := range l.Servers {
						rows = append(rows, g.row(addr, name, orDefault(up.Typ, "general"), orDefault(up.Mode, "rr"), level, s.Addr(),
							strconv.Itoa(s.Weight), strconv.Itoa(s.MaxFails), fmtSeconds(s.FailTimeout)))
					}
				}
			}
			if len(rows) > 0 {
				if err := cli.PrintTable(cmd.OutOrStdout(), g.header("UPSTREAM", "TYP", "MODE", "LEVEL", "SERVER", "WEIGHT", "MAX_FAILS", "FAIL_TIMEOUT"), rows); err != nil {
					return err
				}
			}
			return failure(results)
		},
	}
}

func newUpstreamList(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List upstreams (GET upstream info)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			infos, results, _ := g.info(cmd)
			if g.Output == OutputJSON {
				if err := printPerProxy(g, cmd.OutOrStdout(), infos); err != nil {
					return err
				}
				return failure(results)
			}
			var rows [][]string
			for _, addr := range g.Addrs {
				m := infos[addr]
				for _, name := range slices.Sorted(maps.Keys(m)) {
					up := m[name]
					servers := 0
					for _, l := range up.Cluster.Levels {
						servers += len(l.Servers)
					}
					hb := "on"
					if up.Enable != nil && !*up.Enable {
						hb = "off"
					}
					rows = append(rows, g.row(addr, name, orDefault(up.Typ, "general"), orDefault(up.Mode, "rr"),
						strconv.Itoa(len(up.Cluster.Levels)), strconv.Itoa(servers), hb))
				}
			}
			if err := cli.PrintTable(cmd.OutOrStdout(), g.header("UPSTREAM", "TYP", "MODE", "LEVELS", "SERVERS", "HEARTBEAT"), rows); err != nil {
				return err
			}
			return failure(results)
		},
	}
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

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func fmtSeconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) + "s" }
