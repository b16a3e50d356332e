package slardarctl

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func newServerCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Drain, maintain or restore one server of an upstream (PUT/GET server)",
		Long: `Takes one server of an upstream out of rotation, on every proxy given with --addr, as
HAProxy's "set server state": drain (no new connections; open ones finish: watch CONNS fall
to 0 with "server get" or "status"), maint (no new connections and no heartbeats), ready (back
in rotation). The state stays with the server through PUTs of its upstream that keep it.

With several --addr, every proxy is asked for the server first (GET server) and the state is set
only when all of them have it and answered: a fleet is never left half drained by a typo or
a proxy that is down. --best-effort sets it on every proxy that has the server instead, and
reports each one.`,
	}
	var bestEffort bool
	cmd.PersistentFlags().BoolVar(&bestEffort, "best-effort", false, "set the state on the proxies that have the server even when others do not or cannot be reached")
	for _, state := range []string{checkups.StateDrain, checkups.StateMaint, checkups.StateReady} {
		cmd.AddCommand(&cobra.Command{
			Use:               state + " UPSTREAM HOST:PORT",
			Short:             "Set the server's state to " + state,
			Example:           fmt.Sprintf("  slardarctl --addr 10.0.0.1:1895,10.0.0.2:1895 server %s 3131 10.0.1.5:3306", state),
			Args:              cobra.ExactArgs(2),
			ValidArgsFunction: g.completeNames(true),
			RunE: func(cmd *cobra.Command, args []string) error {
				name := args[0] + "/" + args[1]
				if !bestEffort && g.multi() {
					if err := g.checkFirst(g.do(cmd.Context(), "GET", "server", name, nil)); err != nil {
						return err
					}
				}
				body := []byte(fmt.Sprintf(`{"state":%q}`, state))
				return g.report(cmd, g.do(cmd.Context(), "PUT", "server", name, body),
					fmt.Sprintf("server %s of %s: %s", args[1], args[0], state))
			},
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:               "get UPSTREAM HOST:PORT",
		Short:             "Show the server's state, health and open connections (GET server)",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: g.completeNames(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			results := g.do(cmd.Context(), "GET", "server", args[0]+"/"+args[1], nil)
			byAddr := decodeEach[checkups.ServerStatus](results, "server")
			return show(g, cmd, results, byAddr, table[checkups.ServerStatus]{
				header: []string{"UPSTREAM", "SERVER", "STATE", "STATUS", "PASSIVE", "CONNS"},
				rows: func(s checkups.ServerStatus) [][]string {
					return [][]string{{args[0], args[1], s.State, string(s.Status), string(s.Passive), strconv.FormatInt(s.ActiveConns, 10)}}
				},
			})
		},
	})
	return cmdutil.Group(cmd)
}
