package slardarctl

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/mysql/digest"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
)

func newMySQLCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mysql",
		Short: "mysql-proxy: users at run time, the processlist, kill, query digests",
		Long: `What only mysql-proxy (admin port 1996 by default: use --addr 127.0.0.1:1996) serves: the
users clients log in as, changed without a restart (PUT/GET/DELETE user), and its client
sessions (GET/DELETE session), as ProxySQL's mysql_users and processlist.`,
	}
	user := &cobra.Command{Use: "user", Short: "Put, list and delete the users clients log in as"}
	put := newPutCommand(g, "user", "NAME", checkUser)
	put.Short = "Add or replace a user (PUT user NAME), from the next login on"
	put.Long = `Sends the user in FILE (JSON or YAML: password, auth, backend_user, backend_password,
schema, as a users: entry of the config file) as PUT user NAME. It is used from the next login
on, over a config file user of the same name, until it is deleted or the proxy restarts
(store-sync puts the users of a store's mysql_users/ back). Open sessions go on.`
	put.Example = `  slardarctl --addr 127.0.0.1:1996 mysql user put app -f - <<'EOF'
  {"password":"s3cret","backend_user":"runner","backend_password":"runner123456","schema":"upyun"}
  EOF`
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "info"},
		Short:   "List the users (GET user info); passwords are never shown",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := g.do(cmd.Context(), "GET", "user", "info", nil)
			return show(g, cmd, results, decodeEach[map[string]userInfo](results, "user info"), table[map[string]userInfo]{
				header:  []string{"USER", "SOURCE", "AUTH", "BACKEND_USER", "SCHEMA"},
				listing: true,
				rows: func(m map[string]userInfo) (rows [][]string) {
					for _, name := range slices.Sorted(maps.Keys(m)) {
						u := m[name]
						rows = append(rows, []string{name, u.Source, orDefault(u.Auth, config.AuthNative), orDefault(u.BackendUser, name), u.Schema})
					}
					return rows
				},
			})
		},
	}
	user.AddCommand(put, list, newDeleteCommand(g, "user", "NAME", "Delete a user PUT before (DELETE user NAME); its open sessions go on"))

	processlist := &cobra.Command{
		Use:     "processlist",
		Aliases: []string{"ps", "sessions"},
		Short:   "List the client sessions (GET session info)",
		Long: `Lists mysql-proxy's client sessions as SHOW PROCESSLIST would: the id the client was told
(CONNECTION_ID(), what "kill" takes), the listener's upstream, user, client address, schema,
command (Sleep, Query, Execute, ...), seconds in it, the server connections it holds (T: in a
transaction, P: pinned to the primary) and the statement running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := g.do(cmd.Context(), "GET", "session", "info", nil)
			return show(g, cmd, results, decodeEach[[]process](results, "session info"), table[[]process]{
				header:  []string{"ID", "UPSTREAM", "USER", "CLIENT", "SCHEMA", "COMMAND", "TIME", "SERVERS", "INFO"},
				listing: true,
				rows: func(ps []process) (rows [][]string) {
					for _, p := range ps {
						servers := strings.Join(p.Servers, ",")
						if p.InTx {
							servers += " T"
						}
						if p.Pinned {
							servers += " P"
						}
						rows = append(rows, []string{strconv.FormatUint(uint64(p.ID), 10), p.Upstream, p.User, p.Client, p.Schema, p.Command,
							strconv.FormatFloat(p.Time, 'f', 1, 64), servers, oneLine(p.Info, 80)})
					}
					return rows
				},
			})
		},
	}
	var query bool
	kill := &cobra.Command{
		Use:   "kill [UPSTREAM/]ID",
		Short: "End a client session (DELETE session), or with --query only its statement",
		Long: `Ends the client session of ID (the id in processlist, the client's CONNECTION_ID()) as KILL
CONNECTION does: its statement is stopped on its server and its client's connection closed.
--query stops only the statement, as KILL QUERY. When two listeners have a session of that
id, name it as UPSTREAM/ID.`,
		Example: "  slardarctl --addr 127.0.0.1:1996 mysql kill 42\n  slardarctl --addr 127.0.0.1:1996 mysql kill --query db/42",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, what := args[0], "session "+args[0]+" killed"
			if query {
				name, what = name+":query", "statement of session "+args[0]+" killed"
			}
			return g.report(cmd, g.do(cmd.Context(), "DELETE", "session", name, nil), what)
		},
	}
	kill.Flags().BoolVar(&query, "query", false, "stop only the running statement (KILL QUERY)")
	cmd.AddCommand(cmdutil.Group(user), processlist, kill, newDigestCommand(g), newRuleCommand(g))
	return cmdutil.Group(cmd)
}

func newDigestCommand(g *Globals) *cobra.Command {
	var top int
	var sortBy string
	cmd := &cobra.Command{
		Use:   "digest",
		Short: "The query digests: which statements cost what (GET mysql digest)",
		Long: `Shows mysql-proxy's query digests, as pt-query-digest's profile or ProxySQL's
stats_mysql_query_digest: one row per statement digest (its literals, IN lists and VALUES rows
as ?, comments and spacing gone) and user, schema and upstream, with the share of the total
time, calls, mean and p99 time, errors, rows sent and changed, and where the statements ran
(primary/replica/fallback: reads a replica should have served). Statements beyond
mysql.digests.max digests are counted in one "other" row.`,
		Example: `  slardarctl --addr 127.0.0.1:1996 mysql digest --top 10
  slardarctl --addr 127.0.0.1:1996 mysql digest --sort p99 -o json
  slardarctl --addr 127.0.0.1:1996 mysql digest reset`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := g.do(cmd.Context(), "GET", "mysql", "digest", nil)
			byAddr := decodeEach[[]digestRow](results, "digests")
			for addr, rows := range byAddr {
				sorted, err := sortDigests(rows, sortBy, top)
				if err != nil {
					return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
				}
				byAddr[addr] = sorted
			}
			return show(g, cmd, results, byAddr, table[[]digestRow]{
				header:  []string{"RANK", "DIGEST", "TOTAL_S", "PCT", "CALLS", "MEAN_S", "P99_S", "ERRORS", "ROWS", "AFFECTED", "P/R/F", "USER", "SCHEMA", "UPSTREAM", "QUERY"},
				listing: true,
				rows:    digestRows,
			})
		},
	}
	cmd.Flags().IntVar(&top, "top", 20, "show the first N rows (0: all)")
	cmd.Flags().StringVar(&sortBy, "sort", "total", "order: total (time), count, p99 or errors")
	cmd.RegisterFlagCompletionFunc("sort", cobra.FixedCompletions([]string{"total", "count", "p99", "errors"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(&cobra.Command{
		Use:   "reset",
		Short: "Forget the query digests (DELETE mysql digest)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.report(cmd, g.do(cmd.Context(), "DELETE", "mysql", "digest", nil), "digests reset")
		},
	})
	return cmd
}

// digestRow is a row of GET mysql digest with its rank and share of the total time.
type digestRow struct {
	digest.Row
	Rank  int     `json:"rank"`
	Share float64 `json:"share"` // of the total time of every row
}

// sortDigests orders rows by sortBy, largest first, numbers them and keeps the first top.
func sortDigests(rows []digestRow, sortBy string, top int) ([]digestRow, error) {
	keys := map[string]func(digestRow) float64{
		"total":  func(r digestRow) float64 { return r.Total },
		"count":  func(r digestRow) float64 { return float64(r.Count) },
		"p99":    func(r digestRow) float64 { return r.P99 },
		"errors": func(r digestRow) float64 { return float64(r.Errors) },
	}
	key, ok := keys[sortBy]
	if !ok {
		return nil, fmt.Errorf("--sort %q: want total, count, p99 or errors", sortBy)
	}
	var total float64
	for _, r := range rows {
		total += r.Total
	}
	slices.SortStableFunc(rows, func(a, b digestRow) int { return cmp.Compare(key(b), key(a)) })
	for i := range rows {
		rows[i].Rank = i + 1
		if total > 0 {
			rows[i].Share = rows[i].Total / total
		}
	}
	if top > 0 && len(rows) > top {
		rows = rows[:top]
	}
	return rows, nil
}

func digestRows(rows []digestRow) (out [][]string) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, r := range rows {
		mean := 0.0
		if r.Count > 0 {
			mean = r.Total / float64(r.Count)
		}
		out = append(out, []string{strconv.Itoa(r.Rank), orDefault(r.Digest, "-"), f(r.Total), strconv.FormatFloat(100*r.Share, 'f', 1, 64) + "%",
			u(r.Count), f(mean), f(r.P99), u(r.Errors), u(r.RowsSent), u(r.RowsAffected),
			u(r.Primary) + "/" + u(r.Replica) + "/" + u(r.Fallback), r.User, r.Schema, r.Upstream, oneLine(r.Text, 60)})
	}
	return out
}

// userInfo is a user in GET user info (mysql-proxy's UserInfo; passwords masked).
type userInfo struct {
	Source          string `json:"source"`
	Password        string `json:"password,omitempty"`
	Auth            string `json:"auth,omitempty"`
	BackendUser     string `json:"backend_user,omitempty"`
	BackendPassword string `json:"backend_password,omitempty"`
	Schema          string `json:"schema,omitempty"`
}

// process is a session in GET session info (mysql-proxy's session.Process).
type process struct {
	ID       uint32   `json:"id"`
	Upstream string   `json:"upstream"`
	User     string   `json:"user"`
	Client   string   `json:"client"`
	Schema   string   `json:"schema"`
	Command  string   `json:"command"`
	Time     float64  `json:"time"`
	Info     string   `json:"info"`
	Servers  []string `json:"servers"`
	InTx     bool     `json:"in_transaction"`
	Pinned   bool     `json:"pinned"`
}

// checkUser validates a user body before it is sent.
func checkUser(body, _ []byte, path string) error {
	if _, err := config.ParseUserBody("-", body); err != nil && !strings.Contains(err.Error(), "in the body of user") {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: %w", path, err))
	}
	return nil
}

// oneLine is s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func newRuleCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Put, list and delete query rules, applied at once (PUT/GET/DELETE rule)",
		Long: `Query rules (ProxySQL's mysql_query_rules) change how statements run without a restart. A rule
matches by match.digest (16 hex digits, from "mysql digest"), match.regexp (RE2 on the text),
match.user, match.schema, match.client (an address or CIDR block) and match.listener; rules are
tried by order then name and the first that matches decides (continue: true goes on). It acts
by upstream (run on that upstream's servers, outside transactions), destination (primary or
replica), reject ({code, state, message}: a SQL firewall), rewrite ({pattern, replacement}),
timeout (KILL QUERY after it) and mirror ({upstream, sample}: a copy, results discarded).
A rule that does not compile is refused with its position and the rules in force stay.`,
	}
	put := newPutCommand(g, "rule", "NAME", checkRule)
	put.Short = "Add or replace a query rule (PUT rule NAME)"
	put.Example = `  slardarctl --addr 127.0.0.1:1996 mysql rule put no-truncate -f - <<'EOF'
  order: 1
  match: {user: app, regexp: '(?i)^\s*(drop|truncate)\b'}
  reject: {code: 1148, message: "DROP and TRUNCATE are not for the application"}
  EOF
  slardarctl --addr 127.0.0.1:1996 mysql rule put reports -f - <<<'{"match":{"regexp":"FROM report_"},"upstream":"db_reports","timeout":"30s"}'`
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "info"},
		Short:   "List the rules in order with their hits (GET rule info)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := g.do(cmd.Context(), "GET", "rule", "info", nil)
			return show(g, cmd, results, decodeEach[[]rules.Info](results, "rule info"), table[[]rules.Info]{
				header:  []string{"ORDER", "RULE", "SOURCE", "MATCH", "ACTION", "HITS"},
				listing: true,
				rows: func(rs []rules.Info) (rows [][]string) {
					for _, r := range rs {
						rows = append(rows, []string{strconv.Itoa(r.Order), r.Name, r.Source, jsonOf(r.Match), ruleAction(r.Rule), strconv.FormatInt(r.Hits, 10)})
					}
					return rows
				},
			})
		},
	}
	cmd.AddCommand(put, list, newDeleteCommand(g, "rule", "NAME", "Delete a rule PUT before (DELETE rule NAME)"))
	return cmdutil.Group(cmd)
}

// ruleAction says what a rule does, in a few words.
func ruleAction(r rules.Rule) string {
	var parts []string
	add := func(k string, v any) {
		if s := jsonOf(v); s != "" && s != "null" && s != `""` {
			parts = append(parts, k+" "+strings.Trim(s, `"`))
		}
	}
	add("upstream", r.Upstream)
	add("destination", r.Destination)
	add("reject", r.Reject)
	add("rewrite", r.Rewrite)
	add("timeout", r.Timeout)
	add("mirror", r.Mirror)
	if r.Continue {
		parts = append(parts, "continue")
	}
	return strings.Join(parts, ", ")
}

// jsonOf is v as compact JSON, for a table cell.
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// checkRule refuses, before it is sent, a rule the proxy would refuse.
func checkRule(_, input []byte, path string) error {
	if _, err := rules.Parse("-", input); err != nil && !strings.Contains(err.Error(), "in the body") {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "rule -: ")))
	}
	return nil
}
