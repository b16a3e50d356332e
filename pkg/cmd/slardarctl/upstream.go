package slardarctl

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/admin"
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

A body with "cluster" replaces the whole upstream; a body with "servers" (the short form)
replaces the servers of its first level and the fields it names, and keeps everything else:
the same meaning as in a store value synced by store-sync.`
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
	var bestEffort bool
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete an upstream (DELETE upstream NAME)",
		Long: `Deletes the upstream on every proxy given with --addr. With several, every proxy is asked
first and the upstream is deleted only when all of them have it and answered; --best-effort
deletes it wherever it is instead, and reports each proxy.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeNames(false),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !bestEffort && g.multi() {
				infos, results := g.info(cmd)
				for i, r := range results {
					if r.Err == nil && infos[r.Addr][name] == nil {
						results[i].Err = notFound("upstream", name, r.Addr)
					}
				}
				if err := g.checkFirst(results); err != nil {
					return err
				}
			}
			return g.report(cmd, g.do(cmd.Context(), "DELETE", "upstream", name, nil), "upstream "+name+" deleted")
		},
	}
	cmd.Flags().BoolVar(&bestEffort, "best-effort", false, "delete the upstream on the proxies that have it even when others do not or cannot be reached")
	return cmd
}

// newDeleteCommand is "delete ARG": DELETE <topic> ARG on every proxy, each reported.
func newDeleteCommand(g *Globals, topic, arg, short string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete " + arg,
		Aliases: []string{"rm"},
		Short:   short,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.report(cmd, g.do(cmd.Context(), "DELETE", topic, args[0], nil), topic+" "+args[0]+" deleted")
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
		Use:               "get NAME",
		Short:             "Show one upstream's config (from GET upstream info)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeNames(false),
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

// completeNames completes an UPSTREAM argument from the first proxy's GET upstream info, and
// with servers the HOST:PORT after it from that upstream's servers: what `get`, `delete` and
// `server` take. A proxy that does not answer within a second completes nothing.
func (g *Globals) completeNames(servers bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		const none = cobra.ShellCompDirectiveNoFileComp
		if len(args) > 1 || len(args) == 1 && !servers || g.resolve() != nil {
			return nil, none
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		reply, err := admin.Do(ctx, g.Addrs[0], g.Token, "GET", "upstream", "info", nil)
		var info map[string]*checkups.Upstream
		if err != nil || json.Unmarshal(reply.Data, &info) != nil {
			return nil, none
		}
		if len(args) == 0 {
			return slices.Sorted(maps.Keys(info)), none
		}
		var out []string
		if up := info[args[0]]; up != nil {
			for _, l := range up.Cluster.Levels {
				for _, s := range l.Servers {
					out = append(out, s.Addr())
				}
			}
		}
		return out, none
	}
}
