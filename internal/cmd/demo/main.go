// Command demo brings up the talk's test environment as local processes: two MariaDB servers
// (ports 3306 and 3307 when free) and slardar-proxy serving upstream 3131 over both with a mysql
// heartbeat, then prints what to try and waits for Ctrl-C, which stops everything it started.
// `make demo` runs it. With --smoke it runs the printed checks itself and exits (used by tests).
package main

import (
	"context"
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
	proxyBin  string
	ctlBin    string
	adminPort int
	dataPort  int
	luaPort   int
	dbPorts   [2]int
	smoke     bool
}

func run() error {
	var o options
	flag.StringVar(&o.proxyBin, "proxy", "bin/slardar-proxy", "slardar-proxy binary")
	flag.StringVar(&o.ctlBin, "ctl", "bin/slardarctl", "slardarctl binary")
	flag.IntVar(&o.adminPort, "admin-port", 1895, "admin port")
	flag.IntVar(&o.dataPort, "port", 3131, "data port (upstream name)")
	flag.IntVar(&o.luaPort, "lua-port", 3351, "port for the talk's content script example")
	flag.IntVar(&o.dbPorts[0], "db1", 3306, "first MariaDB port (a free one if taken)")
	flag.IntVar(&o.dbPorts[1], "db2", 3307, "second MariaDB port (a free one if taken)")
	flag.BoolVar(&o.smoke, "smoke", false, "run the checks and exit instead of waiting for Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	for _, p := range []int{o.adminPort, o.dataPort, o.luaPort} {
		if !free(p) {
			return fmt.Errorf("port %d is in use (another demo or slardar-proxy running?); pick others with -admin-port/-port", p)
		}
	}
	dir, err := os.MkdirTemp("", "slardar-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var dbs []*testserver.MariaDB
	defer func() {
		for _, db := range dbs {
			db.Stop()
		}
	}()
	for i, port := range o.dbPorts {
		if !free(port) {
			port = 0
		}
		sub := filepath.Join(dir, "mysql"+strconv.Itoa(i+1))
		os.Mkdir(sub, 0o755)
		fmt.Printf("starting MariaDB %d ...\n", i+1)
		db, err := testserver.StartMariaDB(ctx, sub, port)
		if err != nil {
			return err
		}
		dbs = append(dbs, db)
	}

	cfgPath := filepath.Join(dir, "slardar.yaml")
	cfg := fmt.Sprintf(`# slardar-proxy config written by the demo
admin:
  listen: 127.0.0.1:%[1]d
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
`, o.adminPort, o.dataPort, testserver.User, testserver.Password, testserver.Database, dbs[0].Port, dbs[1].Port, o.luaPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "slardar-proxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	proxy := exec.Command(o.proxyBin, "--config", cfgPath)
	proxy.Stdout, proxy.Stderr = logf, logf
	proxy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := proxy.Start(); err != nil {
		return fmt.Errorf("starting %s (run make build first): %w", o.proxyBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proxy.Wait() }()
	defer func() {
		proxy.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	if err := waitPort(ctx, o.dataPort); err != nil {
		return err
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

Kill a backend (new connections keep working, status turns err within one interval):
  kill %[11]d

Ctrl-C stops everything the demo started.
`, dbs[0].Port, dbs[1].Port, testserver.RootPassword, testserver.User, testserver.Password, testserver.Database,
		o.dataPort, o.adminPort, cfgPath, logPath, pidOf(dbs[0]), len(rawBody), rawBody, o.luaPort)
	fmt.Print(try)
	if o.smoke {
		return smoke(o, dbs)
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping ...")
	case err := <-exited:
		exited <- err
		return fmt.Errorf("slardar-proxy exited: %v (see %s)", err, logPath)
	}
	return nil
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
