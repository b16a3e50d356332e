package slardarctl

import (
	"maps"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func newUpstreamCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "upstream",
		Aliases: []string{"upstreams", "ups"},
		Short:   "Put, get, list and delete upstreams",
	}
	cmd.AddCommand(newUpstreamPut(g), newUpstreamGet(g), newUpstreamList(g), newUpstreamDelete(g))
	return cmdutil.Group(cmd)
}

func newUpstreamPut(g *Globals) *cobra.Command {
	cmd := newPutCommand(g, "upstream", "NAME", checkUpstream)
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
func newPutCommand(g *Globals, topic, arg string, check func(body, input []byte, path string) error) *cobra.Command {
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
			if err := check(body, data, file); err != nil {
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

// info fetches GET upstream info from every proxy.
func (g *Globals) info(cmd *cobra.Command) (map[string]map[string]*checkups.Upstream, []result) {
	results := g.do(cmd.Context(), "GET", "upstream", "info", nil)
	return decodeEach[map[string]*checkups.Upstream](results, "upstream info"), results
}

func newUpstreamGet(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one upstream's config (from GET upstream info)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			infos, results := g.info(cmd)
			byAddr := map[string]*checkups.Upstream{}
			for i, r := range results {
				if up := infos[r.Addr][name]; up != nil {
					byAddr[r.Addr] = up
				} else if r.Err == nil {
					results[i].Err = notFound("upstream", name, r.Addr)
				}
			}
			return show(g, cmd, results, byAddr, table[*checkups.Upstream]{
				header: []string{"UPSTREAM", "TYP", "MODE", "LEVEL", "SERVER", "WEIGHT", "MAX_FAILS", "FAIL_TIMEOUT"},
				rows: func(up *checkups.Upstream) (rows [][]string) {
					for li, l := range up.Cluster.Levels {
						level := strconv.Itoa(li + 1)
						if l.Name != "" {
							level = l.Name
						}
						for _, s := range l.Servers {
							rows = append(rows, []string{name, orDefault(up.Typ, "general"), orDefault(up.Mode, "rr"), level, s.Addr(),
								strconv.Itoa(s.Weight), strconv.Itoa(s.MaxFails), fmtSeconds(float64(s.FailTimeout))})
						}
					}
					return rows
				},
			})
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
			infos, results := g.info(cmd)
			return show(g, cmd, results, infos, table[map[string]*checkups.Upstream]{
				header:  []string{"UPSTREAM", "TYP", "MODE", "LEVELS", "SERVERS", "HEARTBEAT"},
				listing: true,
				rows: func(m map[string]*checkups.Upstream) (rows [][]string) {
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
						rows = append(rows, []string{name, orDefault(up.Typ, "general"), orDefault(up.Mode, "rr"),
							strconv.Itoa(len(up.Cluster.Levels)), strconv.Itoa(servers), hb})
					}
					return rows
				},
			})
		},
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func fmtSeconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) + "s" }
