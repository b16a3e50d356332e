// Command mysqlbench measures mysql-proxy side by side with the L4 proxies (slardar-proxy,
// HAProxy) and a MySQL-aware peer (Gaea), all over the same MariaDB primary and replica, with
// direct connections as the ceiling, in one run on this machine:
//
//   - sysbench oltp_point_select and oltp_read_only at 16 and 64 threads;
//   - the CPU time each proxy process spent per query (from /proc/<pid>/stat).
//
// Reads are spread over both servers everywhere: sysbench's own host list for direct, round
// robin for the L4 proxies, db_read over both for mysql-proxy, both as slaves for Gaea. It
// prints a markdown table. bench/run.sh -mysql runs it.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slardar-go/slardar/bench/internal/proc"
	"github.com/slardar-go/slardar/internal/testserver"
)

type options struct {
	mysqlProxy, slardarProxy, gaea string
	sbTime, rounds                 int
	only                           string
	extra                          string
	consistency                    bool
	digests                        bool
	multiplex                      bool
	listener                       string // more YAML in mysql-proxy's listener entry (", multiplex: true")
	threads                        []int
}

func main() {
	var o options
	flag.StringVar(&o.mysqlProxy, "mysql-proxy", "bin/mysql-proxy", "mysql-proxy binary")
	flag.StringVar(&o.slardarProxy, "slardar-proxy", "bin/slardar-proxy", "slardar-proxy binary")
	flag.StringVar(&o.gaea, "gaea", filepath.Join(cacheDir(), "slardar", "gaea-v1.2.5", "gaea"), "Gaea binary (scripts/install-deps.sh --bench builds it)")
	flag.IntVar(&o.sbTime, "sysbench-time", 10, "seconds of each sysbench run")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of every measurement; the best is reported")
	flag.StringVar(&o.only, "only", "", "run only the rows whose name contains this (e.g. point_select, 64)")
	flag.StringVar(&o.extra, "mysql-proxy-yaml", "", "extra YAML for mysql-proxy's config")
	flag.BoolVar(&o.consistency, "consistency", false, "instead of the peers: mysql-proxy with consistency none, window and session on oltp_read_write")
	flag.BoolVar(&o.multiplex, "multiplex", false, "instead of the peers: 2000 clients through mysql-proxy with multiplexing over 64 connections per server, against 64 clients and against 2000 without multiplexing")
	flag.BoolVar(&o.digests, "digests", false, "instead of the peers: mysql-proxy with query digests off and on, beside direct and Gaea, on oltp_point_select")
	threads := flag.String("threads", "16,64", "sysbench threads of the comparison's rows (the talk's setting: 100)")
	flag.Parse()
	for f := range strings.SplitSeq(*threads, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "mysqlbench: -threads %q: want numbers separated by commas\n", *threads)
			os.Exit(2)
		}
		o.threads = append(o.threads, n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mysqlbench:", err)
		os.Exit(1)
	}
}

func cacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache")
}

// target is one way to reach the servers: sysbench's host and port lists, and the process whose
// CPU is counted (none for direct).
type target struct {
	name  string
	hosts string
	ports string
	cmd   *exec.Cmd
}

// startFunc starts a proxy on port over the servers, its files in dir.
type startFunc func(dir string, port, primary, replica int) (*exec.Cmd, error)

// launch starts a proxy named name in its own directory sub of dir, waits for its port and
// returns it as a target; the caller stops target.cmd.
func launch(dir, name, sub string, start startFunc, primary, replica int) (target, error) {
	port := proc.Port()
	sub = filepath.Join(dir, sub)
	os.MkdirAll(sub, 0o755)
	cmd, err := start(sub, port, primary, replica)
	if err != nil {
		return target{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := proc.WaitPort(port); err != nil {
		proc.Stop(cmd)
		return target{}, fmt.Errorf("%s: %w (log in %s)", name, err, sub)
	}
	return target{name: name, hosts: "127.0.0.1", ports: strconv.Itoa(port), cmd: cmd}, nil
}

// withConfig is startMySQLProxy with more YAML for the file and for its listener entry.
func (o options) withConfig(extra, listener string) startFunc {
	po := o
	po.extra, po.listener = extra+o.extra, listener
	return po.startMySQLProxy
}

func run(o options) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mysqlbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var args []string
	if o.multiplex {
		args = append(args, "--max-connections=2500") // 2000 clients without multiplexing, each with a server connection
	}
	repl, err := testserver.StartReplicationWith(ctx, dir, 0, 0, args...)
	if err != nil {
		return err
	}
	defer repl.Stop()
	primary, replica := repl.Primary.Port, repl.Replica.Port
	if o.multiplex {
		return o.multiplexRun(dir, repl)
	}

	if o.consistency {
		return o.consistencyRun(ctx, dir, repl)
	}
	if o.digests {
		return o.digestRun(dir, repl)
	}
	targets := []target{{name: "direct", hosts: "127.0.0.1,127.0.0.1", ports: fmt.Sprintf("%d,%d", primary, replica)}}
	for _, s := range []struct {
		name  string
		start startFunc
	}{{"mysql-proxy", o.startMySQLProxy}, {"slardar-proxy (L4)", o.startSlardar}, {"HAProxy (L4)", startHAProxy}, {"Gaea", o.startGaea}} {
		t, err := launch(dir, s.name, strings.Fields(s.name)[0], s.start, primary, replica)
		if err != nil {
			return err
		}
		defer proc.Stop(t.cmd)
		targets = append(targets, t)
	}

	sb := func(test string, threads, secs int, t target, cmd string) *exec.Cmd {
		return proc.SysbenchCmd(test, t.hosts, t.ports, threads, secs, cmd)
	}
	prep := target{hosts: "127.0.0.1", ports: strconv.Itoa(primary)}
	if out, err := sb("oltp_point_select", 4, 0, prep, "prepare").CombinedOutput(); err != nil {
		return fmt.Errorf("sysbench prepare: %v\n%s", err, out)
	}
	if err := repl.Sync(ctx); err != nil {
		return err
	}
	// A first short run through each target warms every pool and the servers' caches.
	for _, t := range targets {
		if _, _, err := proc.Sysbench(sb("oltp_point_select", 16, 2, t, "run")); err != nil {
			return fmt.Errorf("warming %s: %w", t.name, err)
		}
	}

	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
	}
	fmt.Printf("| sysbench | unit | %s | mysql-proxy/direct | mysql-proxy/slardar-proxy | mysql-proxy/HAProxy | mysql-proxy/Gaea |\n", strings.Join(names, " | "))
	fmt.Printf("|---|---|%s---|---|---|---|\n", strings.Repeat("---|", len(targets)))
	for _, test := range []string{"oltp_point_select", "oltp_read_only"} {
		for _, threads := range o.threads {
			row := fmt.Sprintf("%s, %d threads", test, threads)
			if o.only != "" && !strings.Contains(row, o.only) {
				continue
			}
			cpu := make([]float64, len(targets)) // µs of proxy CPU per query, in the best round
			failed := make([]string, len(targets))
			best, err := proc.Best(row, "qps", names, o.rounds, func(i int) (float64, error) {
				t := targets[i]
				var before time.Duration
				if t.cmd != nil {
					before, _ = proc.CPU(t.cmd.Process.Pid)
				}
				qps, queries, err := proc.Sysbench(sb(test, threads, o.sbTime, t, "run"))
				if err != nil && i > 1 { // a peer that fails the workload is a result, not the end of the run
					failed[i] = sysbenchError(err)
					return 0, nil
				}
				if err != nil || t.cmd == nil || queries == 0 {
					return qps, err
				}
				after, err := proc.CPU(t.cmd.Process.Pid)
				if err != nil {
					return 0, err
				}
				if us := float64((after - before).Microseconds()) / float64(queries); cpu[i] == 0 || us < cpu[i] {
					cpu[i] = us
				}
				return qps, nil
			})
			if err != nil {
				return err
			}
			cells := make([]string, len(best))
			for i, v := range best {
				cells[i] = proc.Num(v)
				if v == 0 && failed[i] != "" {
					cells[i] = "fails: " + failed[i]
				}
			}
			fmt.Printf("| %s | qps | %s | %s | %s | %s | %s |\n", row, strings.Join(cells, " | "),
				ratio(best[1], best[0]), ratio(best[1], best[2]), ratio(best[1], best[3]), ratio(best[1], best[4]))
			for i := range cpu {
				cells[i] = "—"
				if cpu[i] > 0 {
					cells[i] = strconv.FormatFloat(cpu[i], 'f', 1, 64)
				}
			}
			fmt.Printf("| %s | µs CPU/query | %s | | | | %s |\n", row, strings.Join(cells, " | "), ratio(cpu[1], cpu[4]))
		}
	}
	return nil
}

// ratio is a/b with two decimals, or a dash when b failed.
func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// sysbenchError is the first FATAL line of a failed sysbench run, without its prefix.
func sysbenchError(err error) string {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if msg, ok := strings.CutPrefix(line, "FATAL: "); ok {
			return msg
		}
	}
	return "exit status"
}

func (o options) startMySQLProxy(dir string, port, primary, replica int) (*exec.Cmd, error) {
	return o.startMySQLProxyOver(dir, port, primary, primary, replica)
}

// startMySQLProxyOver runs mysql-proxy with db on the primary and db_read over replicas.
func (o options) startMySQLProxyOver(dir string, port, primary int, replicas ...int) (*exec.Cmd, error) {
	up := func(ports ...int) string {
		var s []string
		for _, p := range ports {
			s = append(s, fmt.Sprintf("{host: 127.0.0.1, port: %d}", p))
		}
		return fmt.Sprintf("{typ: mysql, user: %s, pass: %s, timeout: 2, cluster: [{servers: [%s]}]}", testserver.User, testserver.Password, strings.Join(s, ", "))
	}
	cfg := fmt.Sprintf(`http: {listen: ""}  # several proxies run at once: no endpoint on the default port
admin: {listen: "127.0.0.1:%d"}
listeners: [{listen: "127.0.0.1:%d", upstream: db%s}]
users: [{name: %s, password: %s}]
upstreams:
  db: %s
  db_read: %s
%s
`, proc.Port(), port, o.listener, testserver.User, testserver.Password, up(primary), up(replicas...), o.extra)
	return startWithConfig(dir, "mysql-proxy.yaml", cfg, o.mysqlProxy, "--config")
}

func (o options) startSlardar(dir string, port, primary, replica int) (*exec.Cmd, error) {
	cfg := fmt.Sprintf(`http: {listen: ""}  # several proxies run at once: no endpoint on the default port
admin: {listen: "127.0.0.1:%d"}
listeners: [{listen: "127.0.0.1:%d", upstream: db}]
upstreams:
  db: {cluster: [{servers: [{host: 127.0.0.1, port: %d}, {host: 127.0.0.1, port: %d}]}]}
`, proc.Port(), port, primary, replica)
	return startWithConfig(dir, "slardar.yaml", cfg, o.slardarProxy, "--config")
}

func startHAProxy(dir string, port, primary, replica int) (*exec.Cmd, error) {
	cfg := fmt.Sprintf(`global
  maxconn 8000
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
listen db
  bind 127.0.0.1:%d
  balance roundrobin
  server primary 127.0.0.1:%d
  server replica 127.0.0.1:%d
`, port, primary, replica)
	return startWithConfig(dir, "haproxy.cfg", cfg, "haproxy", "-db", "-f")
}

// startGaea runs Gaea with a file-configured namespace: the primary as master, both servers as
// slaves (read/write split on), pools big enough for 64 threads.
func (o options) startGaea(dir string, port, primary, replica int) (*exec.Cmd, error) {
	if err := os.MkdirAll(filepath.Join(dir, "namespace"), 0o755); err != nil {
		return nil, err
	}
	ns := fmt.Sprintf(`{
  "name": "bench", "online": true, "read_only": false,
  "allowed_dbs": {%[1]q: true},
  "slow_sql_time": "1000",
  "slices": [{"name": "slice-0", "user_name": %[2]q, "password": %[3]q,
    "master": "127.0.0.1:%[4]d", "slaves": ["127.0.0.1:%[4]d@1", "127.0.0.1:%[5]d@1"],
    "capacity": 64, "max_capacity": 128, "idle_timeout": 60}],
  "users": [{"user_name": %[2]q, "password": %[3]q, "namespace": "bench", "rw_flag": 2, "rw_split": 1}],
  "default_slice": "slice-0"
}
`, testserver.Database, testserver.User, testserver.Password, primary, replica)
	if err := os.WriteFile(filepath.Join(dir, "namespace", "bench.json"), []byte(ns), 0o644); err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`config_type=file
file_config_path=%[1]s
environ=local
service_name=gaea_proxy
cluster_name=gaea_bench
log_path=%[1]s
log_level=Notice
log_filename=gaea
log_output=file
admin_addr=127.0.0.1:%[2]d
admin_user=admin
admin_password=admin
proto_type=tcp4
proxy_addr=127.0.0.1:%[3]d
proxy_charset=utf8
slow_sql_time=100
session_timeout=3600
stats_enabled=true
stats_interval=10
encrypt_key=1234abcd5678efg*
server_version=5.6.20-gaea
auth_plugin=mysql_native_password
`, dir, proc.Port(), port)
	return startWithConfig(dir, "gaea.ini", ini, o.gaea, "-config")
}

// startWithConfig writes cfg to dir/name and starts bin with args and the file's path, its
// output in dir/log.
func startWithConfig(dir, name, cfg, bin string, args ...string) (*exec.Cmd, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(args, path)...)
	return cmd, proc.StartLogged(cmd, filepath.Join(dir, "log"))
}

// consistencyRun compares mysql-proxy's read-after-write modes on sysbench oltp_read_write
// (autocommit statements, --skip_trx=on: inside transactions every mode reads on the primary),
// reads on the replica only, and reports from the access log the share of reads that waited
// for the replica (MASTER_GTID_WAIT) or went to the primary.
func (o options) consistencyRun(ctx context.Context, dir string, repl *testserver.Replication) error {
	modes := []string{"none", "window", "session"}
	ports := make([]int, len(modes))
	logs := make([]string, len(modes))
	for i, mode := range modes {
		ports[i] = proc.Port()
		sub := filepath.Join(dir, "mysql-proxy-"+mode)
		os.MkdirAll(sub, 0o755)
		po := o
		po.extra = "mysql: {consistency: " + mode + "}\n" + o.extra
		cmd, err := po.startMySQLProxyOver(sub, ports[i], repl.Primary.Port, repl.Replica.Port)
		if err != nil {
			return err
		}
		defer proc.Stop(cmd)
		if err := proc.WaitPort(ports[i]); err != nil {
			return fmt.Errorf("mysql-proxy %s: %w", mode, err)
		}
		logs[i] = filepath.Join(sub, "log")
	}
	sb := func(port, secs int, cmd string) *exec.Cmd {
		return proc.SysbenchCmd("oltp_read_write", "127.0.0.1", strconv.Itoa(port), 16, secs, cmd, "--skip_trx=on",
			"--mysql-ignore-errors=1062,1213,1020,1205") // sysbench's default list, and 1062: without transactions, threads race on the DELETE+INSERT of one id (so does direct)
	}
	if out, err := sb(repl.Primary.Port, 0, "prepare").CombinedOutput(); err != nil {
		return fmt.Errorf("sysbench prepare: %v\n%s", err, out)
	}
	if err := repl.Sync(ctx); err != nil {
		return err
	}
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = "consistency " + m
	}
	best, err := proc.Best("oltp_read_write --skip_trx=on, 16 threads", "qps", names, o.rounds, func(i int) (float64, error) {
		qps, _, err := proc.Sysbench(sb(ports[i], o.sbTime, "run"))
		return qps, err
	})
	if err != nil {
		return err
	}
	fmt.Printf("| sysbench oltp_read_write --skip_trx=on, 16 threads | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	cells := make([]string, len(best))
	for i, v := range best {
		cells[i] = proc.Num(v)
	}
	fmt.Printf("| qps | %s |\n", strings.Join(cells, " | "))
	for i := range best {
		cells[i] = ratio(best[i], best[0])
	}
	fmt.Printf("| qps / none | %s |\n", strings.Join(cells, " | "))
	for _, f := range []struct{ label, field string }{
		{"reads on a replica after a MASTER_GTID_WAIT", "gtid_waits"},
		{"reads on the primary: the GTID wait timed out", "gtid_fallbacks"},
		{"reads on the primary: inside the window", "window_reads"},
	} {
		for i := range logs {
			sums, err := accessSums(logs[i])
			if err != nil {
				return err
			}
			// Reads: those the replica served, and those sent to the primary instead.
			reads := sums["reads"] + sums["gtid_fallbacks"] + sums["window_reads"]
			cells[i] = "—"
			if reads > 0 {
				cells[i] = fmt.Sprintf("%.1f %%", 100*float64(sums[f.field])/float64(reads))
			}
		}
		fmt.Printf("| %s | %s |\n", f.label, strings.Join(cells, " | "))
	}
	return nil
}

// digestRun measures the cost of the query digests: sysbench oltp_point_select (prepared
// statements, as sysbench runs it) and the same with --db-ps-mode=disable (text statements, a
// digest computed for each), through mysql-proxy with digests off and on, beside direct and
// Gaea, in one run with rounds alternating.
func (o options) digestRun(dir string, repl *testserver.Replication) error {
	primary, replica := repl.Primary.Port, repl.Replica.Port
	targets := []target{{name: "direct", hosts: "127.0.0.1,127.0.0.1", ports: fmt.Sprintf("%d,%d", primary, replica)}}
	for _, s := range []struct {
		name, sub string
		start     startFunc
	}{
		{"mysql-proxy, digests off", "digests-off", o.withConfig("mysql: {digests: {enabled: false}}\n", "")},
		{"mysql-proxy, digests on", "digests-on", o.withConfig("mysql: {digests: {enabled: true}}\n", "")},
		{"Gaea", "gaea", o.startGaea},
	} {
		t, err := launch(dir, s.name, s.sub, s.start, primary, replica)
		if err != nil {
			return err
		}
		defer proc.Stop(t.cmd)
		targets = append(targets, t)
	}
	prep := target{hosts: "127.0.0.1", ports: strconv.Itoa(primary)}
	if out, err := proc.SysbenchCmd("oltp_point_select", prep.hosts, prep.ports, 4, 0, "prepare").CombinedOutput(); err != nil {
		return fmt.Errorf("sysbench prepare: %v\n%s", err, out)
	}
	if err := repl.Sync(context.Background()); err != nil {
		return err
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
		if _, _, err := proc.Sysbench(proc.SysbenchCmd("oltp_point_select", t.hosts, t.ports, 16, 2, "run")); err != nil {
			return fmt.Errorf("warming %s: %w", t.name, err)
		}
	}
	fmt.Printf("| sysbench, 16 threads | unit | %s | digests on/off |\n|---|---|%s---|\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for _, ps := range []string{"auto", "disable"} {
		row := "oltp_point_select, prepared"
		if ps == "disable" {
			row = "oltp_point_select, text (--db-ps-mode=disable)"
		}
		best, err := proc.Best(row, "qps", names, o.rounds, func(i int) (float64, error) {
			qps, _, err := proc.Sysbench(proc.SysbenchCmd("oltp_point_select", targets[i].hosts, targets[i].ports, 16, o.sbTime, "run", "--db-ps-mode="+ps))
			return qps, err
		})
		if err != nil {
			return err
		}
		cells := make([]string, len(best))
		for i, v := range best {
			cells[i] = proc.Num(v)
		}
		fmt.Printf("| %s | qps | %s | %s |\n", row, strings.Join(cells, " | "), ratio(best[2], best[1]))
	}
	return nil
}

// multiplexRun: oltp_point_select (text statements) through mysql-proxy with multiplexing and
// mysql.pool.max_conns 64, with 64 and with 2000 clients, through mysql-proxy without
// multiplexing with 2000, and through Gaea (its own pools) with 64 and 2000, each from sysbench
// (a thread per client) and from the Go load tool (goClients: a goroutine per client); the
// servers' peak Threads_connected during each run (sampled every 200 ms), the errors, and the
// CPU time per statement of the proxy and of the load tool.
func (o options) multiplexRun(dir string, repl *testserver.Replication) error {
	primary, replica := repl.Primary.Port, repl.Replica.Port
	var mux, plain, gaea target
	for _, s := range []struct {
		t         *target
		name, sub string
		start     startFunc
	}{
		{&mux, "multiplex", "multiplex", o.withConfig("mysql: {pool: {max_conns: 64, max_idle: 64, wait_timeout: 30s}}\n", ", multiplex: true")},
		{&plain, "plain", "plain", o.withConfig("mysql: {pool: {wait_timeout: 30s}}\n", "")},
		{&gaea, "Gaea", "gaea", o.startGaea},
	} {
		t, err := launch(dir, s.name, s.sub, s.start, primary, replica)
		if err != nil {
			return err
		}
		defer proc.Stop(t.cmd)
		*s.t = t
	}
	prep := target{hosts: "127.0.0.1", ports: strconv.Itoa(primary)}
	if out, err := proc.SysbenchCmd("oltp_point_select", prep.hosts, prep.ports, 4, 0, "prepare").CombinedOutput(); err != nil {
		return fmt.Errorf("sysbench prepare: %v\n%s", err, out)
	}
	if err := repl.Sync(context.Background()); err != nil {
		return err
	}
	threadsConnected := func(m *testserver.MariaDB) int {
		db, err := sql.Open("mysql", m.DSN("root"))
		if err != nil {
			return -1
		}
		defer db.Close()
		var name string
		var n int
		db.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &n)
		return n
	}
	fmt.Println("| oltp_point_select, text statements | load tool | clients | qps | errors | peak Threads_connected, primary + replica | proxy CPU µs/query | load tool CPU µs/query |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, row := range []struct {
		t       target
		tool    string
		threads int
	}{ // Gaea last: its pools stay open, and would count in the others' Threads_connected
		{mux, "sysbench", 64}, {mux, "sysbench", 2000}, {mux, "Go", 64}, {mux, "Go", 2000}, {plain, "sysbench", 2000}, {plain, "Go", 2000},
		{gaea, "sysbench", 64}, {gaea, "sysbench", 2000}, {gaea, "Go", 64}, {gaea, "Go", 2000}} {
		done := make(chan struct{})
		peak := make(chan int, 1)
		go func() {
			p := 0
			for {
				select {
				case <-done:
					peak <- p
					return
				case <-time.After(200 * time.Millisecond):
					p = max(p, threadsConnected(repl.Primary)+threadsConnected(repl.Replica))
				}
			}
		}()
		qps, errs := "fails", "—"
		var rate float64
		var toolCPU time.Duration
		var proxyCPU0 time.Duration
		if row.tool == "Go" {
			g, err := openClients("127.0.0.1:"+row.t.ports, row.threads)
			if err == nil {
				proxyCPU0, _ = proc.CPU(row.t.cmd.Process.Pid)
				self0, _ := proc.CPU(os.Getpid())
				r, failed := g.run(time.Duration(o.sbTime) * time.Second)
				self1, _ := proc.CPU(os.Getpid())
				g.close()
				rate, qps, errs, toolCPU = r, proc.Num(r), strconv.FormatInt(failed, 10), self1-self0
			} else {
				errs, _, _ = strings.Cut(err.Error(), "\n")
			}
		} else {
			proxyCPU0, _ = proc.CPU(row.t.cmd.Process.Pid)
			cmd := proc.SysbenchCmd("oltp_point_select", row.t.hosts, row.t.ports, row.threads, o.sbTime, "run", "--db-ps-mode=disable", "--mysql-ignore-errors=all")
			out, err := cmd.CombinedOutput()
			if r, _, perr := proc.ParseSysbench(out); perr == nil && err == nil {
				rate = r
				qps, toolCPU = proc.Num(rate), cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()
			}
			if m := errorsRE.FindSubmatch(out); m != nil {
				errs = string(m[1])
			}
			if err != nil {
				errs = sysbenchError(fmt.Errorf("%v\n%s", err, out))
			}
		}
		proxyCPU1, _ := proc.CPU(row.t.cmd.Process.Pid)
		close(done)
		p := <-peak
		perQuery := func(d time.Duration) string {
			if rate == 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f", float64(d.Microseconds())/(rate*float64(o.sbTime)))
		}
		fmt.Printf("| %s | %s | %d | %s | %s | %d | %s | %s |\n", row.t.name, row.tool, row.threads, qps, errs, p, perQuery(proxyCPU1-proxyCPU0), perQuery(toolCPU))
	}
	return nil
}

var errorsRE = regexp.MustCompile(`ignored errors:\s+(\d+)`)

// accessSums adds up the numeric fields of mysql-proxy's access-log lines in a log file.
func accessSums(path string) (map[string]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sums := map[string]int64{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.Contains(line, "log=access") {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			k, v, ok := strings.Cut(field, "=")
			if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
				sums[k] += n
			}
		}
	}
	return sums, nil
}
