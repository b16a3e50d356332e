package slardarctl

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/sni"
)

func newRouteCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Put, get, list and delete sni-router routes",
		Long: `Routes of sni-router (admin port 1897 by default: use --addr 127.0.0.1:1897). A pattern is a
name, *.domain (one label), ~regexp or default; a route is {"upstream":NAME} or
{"target":"$sni:443"}, with optional "alpn" and "proxy_protocol":1|2.`,
	}
	put := newPutCommand(g, "route", "PATTERN", checkRoute)
	put.Short = "Create or replace the route of a pattern (PUT route PATTERN)"
	put.Example = `  echo '{"upstream":"web"}' | slardarctl --addr 127.0.0.1:1897 route put 'www.example.com' -f -
  echo '{"target":"${1}.internal:8443"}' | slardarctl --addr 127.0.0.1:1897 route put '~(.+)\.svc\.example\.com' -f -`
	del := newDeleteCommand(g, "route", "PATTERN", "Delete the route of a pattern (DELETE route PATTERN)")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "info"},
		Short:   "List routes (GET route info)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.printRoutes(cmd, "")
		},
	}
	get := &cobra.Command{
		Use:   "get PATTERN",
		Short: "Show the route of a pattern",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.printRoutes(cmd, args[0])
		},
	}
	cmd.AddCommand(put, get, list, del)
	return cmdutil.Group(cmd)
}

// printRoutes shows every route, or only the one of pattern.
func (g *Globals) printRoutes(cmd *cobra.Command, pattern string) error {
	results := g.do(cmd.Context(), "GET", "route", "info", nil)
	byAddr := decodeEach[map[string]sni.Route](results, "route info")
	if pattern != "" {
		for i, r := range results {
			m, ok := byAddr[r.Addr]
			if !ok {
				continue
			}
			if _, found := m[pattern]; !found {
				results[i].Err = notFound("route", pattern, r.Addr)
				delete(byAddr, r.Addr)
				continue
			}
			byAddr[r.Addr] = map[string]sni.Route{pattern: m[pattern]}
		}
	}
	return show(g, cmd, results, byAddr, table[map[string]sni.Route]{
		header:  []string{"PATTERN", "TO", "ALPN", "PROXY_PROTOCOL"},
		listing: pattern == "",
		rows: func(m map[string]sni.Route) (rows [][]string) {
			for _, p := range slices.Sorted(maps.Keys(m)) {
				r := m[p]
				to := "upstream " + r.Upstream
				if r.Target != "" {
					to = "target " + r.Target
				}
				pp := ""
				if r.ProxyProtocol != 0 {
					pp = "v" + strconv.Itoa(r.ProxyProtocol)
				}
				rows = append(rows, []string{p, to, strings.Join(r.ALPN, ","), pp})
			}
			return rows
		},
	})
}
