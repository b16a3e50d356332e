package slardarctl

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

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
			for i, r := range results {
				if m, ok := statuses[r.Addr]; ok {
					if err := checkLevels(m); err != nil {
						results[i].Err = fmt.Errorf("%s: %w", r.Addr, err)
						delete(statuses, r.Addr)
					}
				}
			}
			return show(g, cmd, results, statuses, table[map[string]json.RawMessage]{
				header:  []string{"UPSTREAM", "LEVEL", "SERVER", "STATUS", "PASSIVE", "FAIL_NUM", "CONNS", "LAST_CHANGE", "MSG"},
				listing: true,
				rows:    statusRows,
			})
		},
	}
}

// statusRows are the rows of one proxy's status: a row per server of every upstream's levels.
func statusRows(m map[string]json.RawMessage) (rows [][]string) {
	for _, key := range slices.Sorted(maps.Keys(m)) {
		name, ok := strings.CutPrefix(key, "cls:")
		if !ok {
			continue
		}
		levels, _ := decodeLevels(m[key]) // checked by checkLevels
		for _, lv := range levels {
			for _, s := range lv.servers {
				msg := ""
				if s.Msg != nil {
					msg = *s.Msg
				}
				server := strings.TrimPrefix(s.Server, name+":")
				rows = append(rows, []string{name, lv.name, server, string(s.Status), string(s.Passive),
					strconv.Itoa(s.FailNum), strconv.FormatInt(s.ActiveConns, 10), s.LastModified, msg})
			}
		}
	}
	return rows
}

// checkLevels makes sure every upstream of a status decodes.
func checkLevels(m map[string]json.RawMessage) error {
	for key, raw := range m {
		if strings.HasPrefix(key, "cls:") {
			if _, err := decodeLevels(raw); err != nil {
				return fmt.Errorf("decoding %s: %w", key, err)
			}
		}
	}
	return nil
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
