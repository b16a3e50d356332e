package slardarctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func newStatusCommand(g *Globals) *cobra.Command {
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show checkups status of every server (GET upstream status)",
		Long: `Shows, for every upstream, level and server: the active health status (ok, err, unstable,
lagging, unchecked, or maint), the operator's state (ready, drain, maint: see "server"), the passive status (err while max_fails failures within fail_timeout hold it down),
consecutive failed heartbeats, open connections, the last heartbeat message and the time the
status last changed; under the table, when the proxy last loaded its config and whether that
worked. With several --addr, each proxy's rows are marked with its address.

-o json and -o yaml print one shape for one proxy or many: a list with an entry per --addr
({"proxy": ADDR, "upstreams": [{"name": ..., "servers": [{"level": ..., "server": HOST:PORT,
...}]}], and the proxy's own fields: slardar_version, last_reload, ...}); a proxy that could not
be asked has "error" instead. --watch prints it again every --interval until interrupted, as
watch(1) would, with proxies that fail reported on stderr without ending the watch.`,
		Example: `  slardarctl status
  slardarctl --addr 10.0.0.1:1895,10.0.0.2:1895 -o json status | jq '.[].upstreams[].servers[] | select(.status != "ok")'
  slardarctl status --watch --interval 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !watch {
				return showStatus(g, cmd)
			}
			if interval <= 0 {
				return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("--interval %s: want a positive duration", interval))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cmd.SetContext(ctx)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			out := cmd.OutOrStdout()
			defer cmd.SetOut(out)
			for first := true; ; first = false {
				// Each print is made whole before it is written: an interrupt never leaves half.
				var frame bytes.Buffer
				cmd.SetOut(&frame)
				if !g.structured() {
					if !first {
						frame.WriteString("\n")
					}
					fmt.Fprintf(&frame, "Every %s: slardarctl status  %s\n\n", interval, time.Now().Format(checkups.TimeLayout))
				}
				err := showStatus(g, cmd)
				if ctx.Err() != nil {
					return nil // interrupted: the watch's normal end
				}
				if _, werr := out.Write(frame.Bytes()); werr != nil {
					return werr
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.Root().Name(), err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the status again every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between two prints of --watch")
	return cmd
}

// showStatus asks every proxy for GET upstream status once and prints the answers.
func showStatus(g *Globals, cmd *cobra.Command) error {
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
	if g.structured() {
		if err := g.emit(cmd, statusList(results, statuses), nil, nil, false); err != nil {
			return err
		}
		return failure(results)
	}
	err := show(g, cmd, results, statuses, table[map[string]json.RawMessage]{
		header:  []string{"UPSTREAM", "LEVEL", "SERVER", "STATUS", "STATE", "PASSIVE", "FAIL_NUM", "CONNS", "LAST_CHANGE", "MSG"},
		listing: true,
		rows:    statusRows,
	})
	for _, addr := range g.Addrs {
		if m, ok := statuses[addr]; ok {
			fmt.Fprintln(cmd.OutOrStdout(), lastReload(addr, m["last_reload"], g.multi()))
		}
	}
	return err
}

// statusList is the structured status: an entry per --addr, in order, whether one or many.
// Each has the proxy's own fields as it sent them, and its upstreams by the names users know
// (not the protocol's "cls:" keys) with every server's level and HOST:PORT.
func statusList(results []result, statuses map[string]map[string]json.RawMessage) []map[string]any {
	type server struct {
		Level  string `json:"level"`
		Server string `json:"server"`
		checkups.ServerStatus
	}
	type upstream struct {
		Name    string   `json:"name"`
		Servers []server `json:"servers"`
	}
	out := make([]map[string]any, 0, len(results))
	for _, r := range results {
		entry := map[string]any{"proxy": r.Addr}
		out = append(out, entry)
		m, ok := statuses[r.Addr]
		if !ok {
			if r.Err != nil {
				entry["error"] = r.Err.Error()
			}
			continue
		}
		ups := []upstream{}
		for _, key := range slices.Sorted(maps.Keys(m)) {
			name, ok := strings.CutPrefix(key, "cls:")
			if !ok {
				entry[key] = m[key]
				continue
			}
			up := upstream{Name: name, Servers: []server{}}
			levels, _ := decodeLevels(m[key]) // checked by checkLevels
			for _, lv := range levels {
				for _, s := range lv.servers {
					up.Servers = append(up.Servers, server{Level: lv.name, Server: strings.TrimPrefix(s.Server, name+":"), ServerStatus: s})
				}
			}
			ups = append(ups, up)
		}
		entry["upstreams"] = ups
	}
	return out
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
