package ctl

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cli"

	"github.com/slardar-go/slardar/pkg/checkups"
)

func newStatusCommand(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show checkups status of every server (GET upstream status)",
		Long: `Shows, for every upstream, level and server: the active health status (ok, err, unstable or
unchecked), the passive status (err while max_fails failures within fail_timeout hold it down),
consecutive failed heartbeats, open connections, the last heartbeat message and the time the
status last changed. With several --addr, each proxy's rows are marked with its address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := g.do(cmd.Context(), "GET", "upstream", "status", nil)
			statuses := decodeEach[map[string]json.RawMessage](results, "status")
			if g.Output == OutputJSON {
				if err := printPerProxy(g, cmd.OutOrStdout(), statuses); err != nil {
					return err
				}
				return failure(results)
			}
			var rows [][]string
			for _, addr := range g.Addrs {
				m, ok := statuses[addr]
				if !ok {
					continue
				}
				for _, key := range slices.Sorted(maps.Keys(m)) {
					name, ok := strings.CutPrefix(key, "cls:")
					if !ok {
						continue
					}
					levels, err := decodeLevels(m[key])
					if err != nil {
						return fmt.Errorf("%s: decoding %s: %w", addr, key, err)
					}
					for _, lv := range levels {
						for _, s := range lv.servers {
							msg := ""
							if s.Msg != nil {
								msg = *s.Msg
							}
							server := strings.TrimPrefix(s.Server, name+":")
							rows = append(rows, g.row(addr, name, lv.name, server, string(s.Status), string(s.Passive),
								strconv.Itoa(s.FailNum), strconv.FormatInt(s.ActiveConns, 10), s.LastModified, msg))
						}
					}
				}
			}
			if err := cli.PrintTable(cmd.OutOrStdout(), g.header("UPSTREAM", "LEVEL", "SERVER", "STATUS", "PASSIVE", "FAIL_NUM", "CONNS", "LAST_CHANGE", "MSG"), rows); err != nil {
				return err
			}
			return failure(results)
		},
	}
}

type statusLevel struct {
	name    string
	servers []checkups.ServerStatus
}

// decodeLevels reads a "cls:<name>" value: an array of levels, or an object of named levels.
func decodeLevels(raw json.RawMessage) ([]statusLevel, error) {
	var arr [][]checkups.ServerStatus
	if err := json.Unmarshal(raw, &arr); err == nil {
		out := make([]statusLevel, len(arr))
		for i, l := range arr {
			out[i] = statusLevel{name: strconv.Itoa(i + 1), servers: l}
		}
		return out, nil
	}
	var named map[string][]checkups.ServerStatus
	if err := json.Unmarshal(raw, &named); err != nil {
		return nil, err
	}
	var out []statusLevel
	for _, n := range slices.Sorted(maps.Keys(named)) {
		out = append(out, statusLevel{name: n, servers: named[n]})
	}
	return out, nil
}
