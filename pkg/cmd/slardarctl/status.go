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
		Long: `Shows, for every upstream, level and server: the active health status (ok, err, unstable,
lagging, unchecked, or maint), the operator's state (ready, drain, maint: see "server"), the passive status (err while max_fails failures within fail_timeout hold it down),
consecutive failed heartbeats, open connections, the last heartbeat message and the time the
status last changed; under the table, when the proxy last loaded its config and whether that
worked. With several --addr, each proxy's rows are marked with its address.`,
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
			err := show(g, cmd, results, statuses, table[map[string]json.RawMessage]{
				header:  []string{"UPSTREAM", "LEVEL", "SERVER", "STATUS", "STATE", "PASSIVE", "FAIL_NUM", "CONNS", "LAST_CHANGE", "MSG"},
				listing: true,
				rows:    statusRows,
			})
			if g.Output == OutputTable {
				for _, addr := range g.Addrs {
					if m, ok := statuses[addr]; ok {
						fmt.Fprintln(cmd.OutOrStdout(), lastReload(addr, m["last_reload"], g.multi()))
					}
				}
			}
			return err
		},
	}
}

// lastReload is the line under the table: when the proxy last loaded its config, and how.
func lastReload(addr string, raw json.RawMessage, multi bool) string {
	var r struct {
		Time  string `json:"time"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	line := "last config load: "
	if multi {
		line = addr + " " + line
	}
	if raw == nil || json.Unmarshal(raw, &r) != nil {
		return line + "unknown (the proxy does not report it)"
	}
	if r.OK {
		return line + r.Time + " ok"
	}
	return line + r.Time + " FAILED: " + r.Error
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
				state := s.State
				if state == "" {
					state = checkups.StateReady // a proxy that predates the field
				}
				rows = append(rows, []string{name, lv.name, server, string(s.Status), state, string(s.Passive),
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
