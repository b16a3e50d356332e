// Command demo brings up the talk's test environment as local processes: two MariaDB servers
// (ports 3306 and 3307 when free; the second replicates from the first), slardar-proxy serving
// upstream 3131 over both with a mysql heartbeat, mysql-proxy on 3141 sending writes to the
// first and reads to the second, and the store: etcd (Debian's) with store-sync feeding
// slardar-proxy from it; then it prints what to try and waits for Ctrl-C, which stops
// everything it started.
// `make demo` runs it. With --smoke it runs the printed checks itself and exits (used by tests).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	proxyBin       string
	mysqlProxyBin  string
	syncBin        string
	ctlBin         string
	httpPort       int
	mysqlHTTPPort  int
	syncHTTPPort   int
	adminPort      int
	dataPort       int
	luaPort        int
	mysqlAdminPort int
	mysqlPort      int
	dbPorts        [2]int
	smoke          bool
	readme         string // README.md whose quick start --smoke runs too
}

func run() error {
	var o options
	flag.StringVar(&o.proxyBin, "proxy", "bin/slardar-proxy", "slardar-proxy binary")
	flag.StringVar(&o.mysqlProxyBin, "mysql-proxy", "bin/mysql-proxy", "mysql-proxy binary")
	flag.StringVar(&o.syncBin, "store-sync", "bin/store-sync", "store-sync binary")
	flag.StringVar(&o.ctlBin, "ctl", "bin/slardarctl", "slardarctl binary")
	flag.IntVar(&o.httpPort, "http-port", 1995, "slardar-proxy's /metrics port")
	flag.IntVar(&o.mysqlHTTPPort, "mysql-http-port", 1996, "mysql-proxy's /metrics port")
	flag.IntVar(&o.syncHTTPPort, "sync-http-port", 1898, "store-sync's /metrics and /health port")
	flag.IntVar(&o.adminPort, "admin-port", 1895, "admin port")
	flag.IntVar(&o.dataPort, "port", 3131, "data port (upstream name)")
	flag.IntVar(&o.luaPort, "lua-port", 3351, "port for the talk's content script example")
	flag.IntVar(&o.mysqlAdminPort, "mysql-admin-port", 1896, "mysql-proxy's admin port")
	flag.IntVar(&o.mysqlPort, "mysql-port", 3141, "mysql-proxy's port (writes to the first MariaDB, reads to the second)")
	flag.IntVar(&o.dbPorts[0], "db1", 3306, "first MariaDB port (a free one if taken)")
	flag.IntVar(&o.dbPorts[1], "db2", 3307, "second MariaDB port (a free one if taken)")
	flag.BoolVar(&o.smoke, "smoke", false, "run the checks and the printed walkthrough, and exit instead of waiting for Ctrl-C")
	flag.StringVar(&o.readme, "readme", "", "with --smoke, also run the sh blocks of this README.md (its ports moved to the demo's)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	for _, p := range []int{o.adminPort, o.dataPort, o.luaPort, o.mysqlAdminPort, o.mysqlPort, o.httpPort, o.mysqlHTTPPort, o.syncHTTPPort} {
		if !free(p) {
			return fmt.Errorf("port %d is in use (another demo or proxy running?); pick others with -admin-port, -port, -lua-port, -mysql-admin-port, -mysql-port, -http-port, -mysql-http-port, -sync-http-port", p)
		}
	}
	dir, err := os.MkdirTemp("", "slardar-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	for i, port := range o.dbPorts {
		if !free(port) {
			o.dbPorts[i] = 0
		}
	}
	fmt.Println("starting MariaDB: a primary and its replica ...")
	repl, err := testserver.StartReplication(ctx, dir, o.dbPorts[0], o.dbPorts[1])
	if err != nil {
		return err
	}
	defer repl.Stop()
	dbs := []*testserver.MariaDB{repl.Primary, repl.Replica}

	cfgPath := filepath.Join(dir, "slardar.yaml")
	cfg := fmt.Sprintf(`# slardar-proxy config written by the demo
admin:
  listen: 127.0.0.1:%[1]d
http:
  listen: 127.0.0.1:%[9]d       # /metrics, /livez, /readyz
checkups:
  interval: 2s
shared_dicts:
  stream_limit_req_store: 1m
listeners:
  - listen: 127.0.0.1:%[2]d        # upstream "%[2]d", named by its port as in the original
  - listen: 127.0.0.1:%[8]d        # served by script.content%[8]d once it is loaded
upstreams:
  "%[2]d":
    typ: mysql                  # heartbeat: a real MySQL login
    user: %[3]s
    pass: %[4]s
    name: %[5]s
    timeout: 2
    cluster:
      - servers:
          - {host: 127.0.0.1, port: %[6]d, max_fails: 3, fail_timeout: 10}
          - {host: 127.0.0.1, port: %[7]d}
`, o.adminPort, o.dataPort, testserver.User, testserver.Password, testserver.Database, dbs[0].Port, dbs[1].Port, o.luaPort, o.httpPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	mysqlCfgPath := filepath.Join(dir, "mysql-proxy.yaml")
	mysqlCfg := fmt.Sprintf(`# mysql-proxy config written by the demo
admin:
  listen: 127.0.0.1:%[1]d
http:
  listen: 127.0.0.1:%[7]d
checkups:
  interval: 2s
listeners:
  - listen: 127.0.0.1:%[2]d
    upstream: db                # writes to db, reads to db_read
users:
  - {name: %[3]s, password: %[4]s}
upstreams:
  db:
    typ: mysql
    user: %[3]s
    pass: %[4]s
    timeout: 2
    cluster: [{servers: [{host: 127.0.0.1, port: %[5]d}]}]
  db_read:
    typ: mysql
    user: %[3]s
    pass: %[4]s
    timeout: 2
    cluster: [{servers: [{host: 127.0.0.1, port: %[6]d}]}]
`, o.mysqlAdminPort, o.mysqlPort, testserver.User, testserver.Password, dbs[0].Port, dbs[1].Port, o.mysqlHTTPPort)
	if err := os.WriteFile(mysqlCfgPath, []byte(mysqlCfg), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "slardar-proxy.log")
	exited := make(chan error, 2)
	stopProxy, err := startProcess(o.proxyBin, cfgPath, logPath, "slardar-proxy", exited)
	if err != nil {
		return err
	}
	defer stopProxy()
	mysqlLogPath := filepath.Join(dir, "mysql-proxy.log")
	stopMySQLProxy, err := startProcess(o.mysqlProxyBin, mysqlCfgPath, mysqlLogPath, "mysql-proxy", exited)
	if err != nil {
		return err
	}
	defer stopMySQLProxy()
	// The store: etcd, and store-sync keeping slardar-proxy equal to it.
	fmt.Println("starting etcd and store-sync ...")
	etcd, err := testserver.StartEtcd(ctx, dir)
	if err != nil {
		return err
	}
	defer etcd.Stop()
	syncCfgPath := filepath.Join(dir, "store-sync.yaml")
	syncCfg := fmt.Sprintf(`# store-sync config written by the demo
listen: 127.0.0.1:%d
syncs:
  - source: etcd://%s
    prefix: config/slardar/
    targets: [127.0.0.1:%d]     # slardar-proxy's admin port
`, o.syncHTTPPort, etcd.Addr, o.adminPort)
	if err := os.WriteFile(syncCfgPath, []byte(syncCfg), 0o644); err != nil {
		return err
	}
	syncLogPath := filepath.Join(dir, "store-sync.log")
	stopSync, err := startProcess(o.syncBin, syncCfgPath, syncLogPath, "store-sync", exited)
	if err != nil {
		return err
	}
	defer stopSync()
	for _, port := range []int{o.dataPort, o.mysqlPort, o.syncHTTPPort} {
		if err := waitPort(ctx, port); err != nil {
			return err
		}
	}

	rawBody := fmt.Sprintf(`{"cluster":[{"servers":[{"host":"127.0.0.1","port":%d}]}]}`, dbs[0].Port)
	try := fmt.Sprintf(`
The talk's test environment is up:
  MariaDB      127.0.0.1:%[1]d and 127.0.0.1:%[2]d   (root/%[3]s, %[4]s/%[5]s, database %[6]s)
  slardar-proxy data 127.0.0.1:%[7]d -> upstream "%[7]d", admin 127.0.0.1:%[8]d
  config %[9]s, log %[10]s

Try (round robin: run it twice, the port alternates):
  echo "select @@port" | mysql --skip-column-names -h 127.0.0.1 -P %[7]d -u%[4]s -p%[5]s %[6]s

Checkups status, upstreams:
  bin/slardarctl --addr 127.0.0.1:%[8]d status
  bin/slardarctl --addr 127.0.0.1:%[8]d upstream get %[7]d

Consistent hash on the client address (the port stops alternating):
  bin/slardarctl --addr 127.0.0.1:%[8]d upstream put %[7]d -f - <<'EOF'
  {"mode":"ip_hash","typ":"mysql","user":"%[4]s","pass":"%[5]s","name":"%[6]s",
   "cluster":[{"servers":[{"host":"127.0.0.1","port":%[1]d},{"host":"127.0.0.1","port":%[2]d}]}]}
  EOF

The raw admin protocol, as in the talk:
  printf 'PUT upstream %[7]d\n\x00\x00\x00\x%02[12]x%[13]s' | nc -q1 127.0.0.1 %[8]d | xxd
  printf 'GET upstream status\n' | nc -q1 127.0.0.1 %[8]d | xxd | head

Lua without a restart (the talk's examples):
  printf 'LOAD code script.content%[14]d\n\x00\x00\x00\x16ngx.say("Hello, Lua!")' | nc -q1 127.0.0.1 %[8]d | xxd
  nc -q1 127.0.0.1 %[14]d </dev/null
  printf 'LOAD code script.preread%[7]d\n\x00\x00\x00\x0bngx.exit(1)' | nc -q1 127.0.0.1 %[8]d | xxd
  mysql -h 127.0.0.1 -P %[7]d -u%[4]s -p%[5]s %[6]s      # ERROR 2013: Lost connection
  bin/slardarctl --addr 127.0.0.1:%[8]d code delete script.preread%[7]d
  bin/slardarctl --addr 127.0.0.1:%[8]d code info

Read/write split through mysql-proxy on %[15]d (admin %[16]d; config %[17]s, log %[18]s):
  mysql -h 127.0.0.1 -P %[15]d -u%[4]s -p%[5]s %[6]s -e 'select @@port'        # %[2]d, the replica
  mysql -h 127.0.0.1 -P %[15]d -u%[4]s -p%[5]s %[6]s -e 'create table if not exists t (id int primary key auto_increment, v text); insert into t (v) values ("hi"); select @@port, last_insert_id()'   # %[1]d
  mysql -h 127.0.0.1 -P %[15]d -u%[4]s -p%[5]s %[6]s --comments -e '/*master*/ select @@port'   # %[1]d
  bin/slardarctl --addr 127.0.0.1:%[16]d status

Metrics, health and drain:
  curl -s 127.0.0.1:%[23]d/metrics | grep ^slardar_connections_total
  curl -s 127.0.0.1:%[24]d/metrics | grep ^slardar_mysql_queries_total
  bin/slardarctl --addr 127.0.0.1:%[8]d server drain %[7]d 127.0.0.1:%[1]d
  bin/slardarctl --addr 127.0.0.1:%[8]d status

The store, as in the talk ("upstream in consul", "code in consul"): etcd %[19]s, with
store-sync (%[20]s, log %[21]s) applying every change to slardar-proxy:
  bin/slardarctl store --store etcd://%[19]s put upstream %[7]d -f - <<<'{"servers":[{"host":"127.0.0.1","port":%[2]d}]}'
  etcdctl --endpoints %[19]s put config/slardar/lua_stream/script.preread%[7]d 'ngx.exit(1)'
  mysql -h 127.0.0.1 -P %[7]d -u%[4]s -p%[5]s %[6]s      # refused by the script from the store
  bin/slardarctl store --store etcd://%[19]s delete code script.preread%[7]d
  curl -s 127.0.0.1:%[22]d/health

Kill a backend (new connections keep working, status turns err within one interval):
  kill %[11]d

Ctrl-C stops everything the demo started.
`, dbs[0].Port, dbs[1].Port, testserver.RootPassword, testserver.User, testserver.Password, testserver.Database,
		o.dataPort, o.adminPort, cfgPath, logPath, pidOf(dbs[0]), len(rawBody), rawBody, o.luaPort,
		o.mysqlPort, o.mysqlAdminPort, mysqlCfgPath, mysqlLogPath, etcd.Addr, syncCfgPath, syncLogPath, o.syncHTTPPort,
		o.httpPort, o.mysqlHTTPPort)
	fmt.Print(try)
	if o.smoke {
		if err := smoke(o, dbs); err != nil {
			return err
		}
		_, walk, _ := strings.Cut(try, "\nTry ")
		return smokeWalk(o, "Try "+walk, [2]int{dbs[0].Port, dbs[1].Port})
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping ...")
	case err := <-exited:
		exited <- err
		return err
	}
	return nil
}

// startProcess runs bin --config cfg with its output in logPath; an exit is reported on exited.
// stop ends it with SIGTERM and waits.
func startProcess(bin, cfg, logPath, name string, exited chan<- error) (stop func(), err error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s (run make build first): %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(done)
		select {
		case exited <- fmt.Errorf("%s exited: %v (see %s)", name, err, logPath):
		default:
		}
	}()
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}, nil
}

// smoke runs the round-robin check with the real mysql client and the raw admin example.
func smoke(o options, dbs []*testserver.MariaDB) error {
	seen := map[string]bool{}
	for range 4 {
		out, err := exec.Command("mariadb", "--no-defaults", "--skip-column-names", "-h", "127.0.0.1", "-P", strconv.Itoa(o.dataPort),
			"-u"+testserver.User, "-p"+testserver.Password, "-e", "select @@port", testserver.Database).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mysql through the proxy: %v: %s", err, out)
		}
		seen[strings.TrimSpace(string(out))] = true
	}
	if len(seen) != 2 {
		return fmt.Errorf("round robin reached %v; want both servers", seen)
	}
	load := exec.Command(o.ctlBin, "--addr", "127.0.0.1:"+strconv.Itoa(o.adminPort), "code", "load", "script.content"+strconv.Itoa(o.luaPort), "-f", "-")
	load.Stdin = strings.NewReader(`ngx.say("Hello, Lua!")`)
	if out, err := load.CombinedOutput(); err != nil {
		return fmt.Errorf("slardarctl code load: %v: %s", err, out)
	}
	hello, err := exec.Command("nc", "-q1", "127.0.0.1", strconv.Itoa(o.luaPort)).Output()
	if err != nil || string(hello) != "Hello, Lua!\n" {
		return fmt.Errorf("nc to the content script: %q, %v", hello, err)
	}
	fmt.Printf("\nsmoke: %s", hello)
	out, err := exec.Command(o.ctlBin, "--addr", "127.0.0.1:"+strconv.Itoa(o.adminPort), "status").CombinedOutput()
	if err != nil {
		return fmt.Errorf("slardarctl status: %v: %s", err, out)
	}
	fmt.Printf("\nsmoke: round robin reached ports %v\n%s", keys(seen), out)

	split := func(args ...string) (string, error) {
		out, err := exec.Command("mariadb", append([]string{"--no-defaults", "--skip-column-names", "--comments", "-h", "127.0.0.1",
			"-P", strconv.Itoa(o.mysqlPort), "-u" + testserver.User, "-p" + testserver.Password, testserver.Database}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	read, err := split("-e", "select @@port")
	if err != nil || read != strconv.Itoa(dbs[1].Port) {
		return fmt.Errorf("a read through mysql-proxy answered %q (%v); want the replica's port %d", read, err, dbs[1].Port)
	}
	// The client sends the statements one by one; LAST_INSERT_ID() is the session's on the primary.
	write, err := split("-e", "create table if not exists demo_t (id int primary key auto_increment); insert into demo_t () values (); select @@port, last_insert_id() > 0")
	if write, _, _ = strings.Cut(write, "\t"); err != nil || write != strconv.Itoa(dbs[0].Port) {
		return fmt.Errorf("a write through mysql-proxy answered %q (%v); want the primary's port %d", write, err, dbs[0].Port)
	}
	fmt.Printf("smoke: mysql-proxy read on %s, wrote on %s\n", read, write)
	return smokeStore(o)
}

// smokeStore writes the talk's ngx.exit(1) preread into etcd with slardarctl store and waits
// until store-sync has made slardar-proxy refuse connections with it; then deletes it again.
func smokeStore(o options) error {
	admin := "127.0.0.1:" + strconv.Itoa(o.adminPort)
	storeURL := ""
	if out, err := exec.Command("curl", "-s", fmt.Sprintf("127.0.0.1:%d/health", o.syncHTTPPort)).Output(); err == nil {
		var h struct {
			Stores map[string]bool `json:"stores"`
		}
		json.Unmarshal(out, &h)
		for s := range h.Stores {
			storeURL = s
		}
	}
	if storeURL == "" {
		return fmt.Errorf("store-sync's /health names no store")
	}
	name := "script.preread" + strconv.Itoa(o.dataPort)
	put := exec.Command(o.ctlBin, "store", "--store", storeURL, "put", "code", name, "-f", "-")
	put.Stdin = strings.NewReader("ngx.exit(1)")
	if out, err := put.CombinedOutput(); err != nil {
		return fmt.Errorf("slardarctl store put: %v: %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command(o.ctlBin, "--addr", admin, "code", "info").CombinedOutput()
		if strings.Contains(string(out), name) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("store-sync did not load %s from %s into slardar-proxy", name, storeURL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("smoke: %s from the store reached slardar-proxy through store-sync\n", name)
	del := exec.Command(o.ctlBin, "store", "--store", storeURL, "delete", "code", name)
	if out, err := del.CombinedOutput(); err != nil {
		return fmt.Errorf("slardarctl store delete: %v: %s", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command(o.ctlBin, "--addr", admin, "code", "info").CombinedOutput()
		if !strings.Contains(string(out), name) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("store-sync did not delete %s from slardar-proxy", name)
		}
	}
	metrics, err := exec.Command("curl", "-s", fmt.Sprintf("127.0.0.1:%d/metrics", o.httpPort)).Output()
	if err != nil || !strings.Contains(string(metrics), "slardar_connections_total{") {
		return fmt.Errorf("slardar-proxy /metrics: %v", err)
	}
	fmt.Println("smoke: /metrics has slardar_connections_total")
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func pidOf(db *testserver.MariaDB) int {
	data, err := os.ReadFile(filepath.Join(db.Dir, "mysqld.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

func free(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func waitPort(ctx context.Context, port int) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("slardar-proxy did not open its data port")
}
