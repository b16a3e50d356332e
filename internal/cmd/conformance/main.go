// Command conformance runs a MySQL client library's own tests — go-sql-driver/mysql, at the
// version pinned below, with that driver's CI settings (max_connections=50, performance_schema,
// max_allowed_packet=48M, local_infile, TLS certificates) — against a MariaDB primary
// directly, through a mysql-proxy listener that has only the primary, through a split
// listener over the primary and a replica, and through such a listener with multiplexing. It
// prints the tests whose outcome differs and fails unless the same tests pass all four ways: a
// client must not be able to tell, from
// behaviour its driver's tests check, that a proxy is in between.
//
// `make conformance` runs it (and `make test` runs that).
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
)

// The client library whose tests are run, pinned.
const (
	driverModule  = "github.com/go-sql-driver/mysql"
	driverVersion = "v1.9.3"
)

// skipped are the driver's tests that do not test a server: TestConnectorReturnsTimeout dials
// 1.1.1.1 on the internet and expects the dial to time out (on a machine whose network
// answers, it crashes the test binary).
const skipped = "^TestConnectorReturnsTimeout$"

// driverTimeout bounds one run of the driver's tests (each takes under a minute): a hang
// ends in go test's panic, which names the tests still running. A test binary that ends early
// (that panic, or a test's) is reported as the test packagePanic with the panic's output.
const (
	driverTimeout = 5 * time.Minute
	packagePanic  = "(test binary panicked)"
)

// The test database and account, as the driver's CI has them.
const (
	testDB       = "gotest"
	testUser     = "root"
	testPassword = testserver.RootPassword
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

type options struct {
	proxyBin string
	run      string
	count    int
	verbose  bool
	keep     bool
	driver   bool
	mtr      string
}

func run() error {
	var o options
	flag.StringVar(&o.proxyBin, "proxy", "bin/mysql-proxy", "the mysql-proxy binary")
	flag.StringVar(&o.run, "run", "", "only the driver's tests matching this regexp (go test -run)")
	flag.IntVar(&o.count, "count", 1, "run each of the driver's tests this many times (go test -count), to catch one that fails by chance")
	flag.BoolVar(&o.verbose, "v", false, "print the output of every test whose outcome differs")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (servers' logs, the proxy's log)")
	flag.BoolVar(&o.driver, "driver", true, "run the driver's tests")
	flag.StringVar(&o.mtr, "mtr", mtrTests, "the server's own tests (main suite, space-separated) run by mysql-test-run --extern directly and through mysql-proxy; empty for none")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "slardar-conformance-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var errs []error
	if o.driver {
		errs = append(errs, runDriver(ctx, dir, o))
	}
	if o.mtr != "" {
		fmt.Println()
		errs = append(errs, runMTR(ctx, dir, o.proxyBin, o.mtr, o.verbose))
	}
	return errors.Join(errs...)
}

// runDriver runs the driver's tests directly, through a primary-only listener and through a
// split one, and reports the tests whose outcome differs.
func runDriver(ctx context.Context, dir string, o options) error {
	src, err := driverSource(ctx, dir)
	if err != nil {
		return err
	}
	certs, err := testserver.MakeCerts(dir)
	if err != nil {
		return err
	}
	repl, err := testserver.StartReplicationWith(ctx, dir, 0, 0, "--max-connections=50", "--max-allowed-packet=48M",
		"--local-infile=1", "--performance-schema=ON", "--ssl-ca="+certs.CA, "--ssl-cert="+certs.Cert, "--ssl-key="+certs.Key)
	if err != nil {
		return fmt.Errorf("starting MariaDB (make conformance installs it): %w", err)
	}
	defer repl.Stop()
	if err := rootExec(ctx, repl.Primary, "CREATE DATABASE IF NOT EXISTS "+testDB); err != nil {
		return err
	}
	if err := repl.Sync(ctx); err != nil {
		return err
	}
	proxy, err := startProxy(ctx, o.proxyBin, dir, driverProxyConfig(repl, certs.CA))
	if err != nil {
		return err
	}
	defer proxy.stop()

	targets := []struct{ name, addr string }{
		{"direct", repl.Primary.Addr()},
		{"primary-only", proxy.primaryOnly},
		{"split", proxy.split},
		{"multiplex", proxy.multiplex},
	}
	results := make([]map[string]outcome, len(targets))
	for i, tg := range targets {
		fmt.Printf("running %s %s's tests against %s (%s) ...\n", driverModule, driverVersion, tg.name, tg.addr)
		start := time.Now()
		if results[i], err = runTests(ctx, src, tg.addr, o.run, o.count, filepath.Join(dir, tg.name+".json")); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		fmt.Printf("  %s in %v\n", summary(results[i]), time.Since(start).Round(time.Second))
		if i > 0 && differ(results[0], results[i]) {
			// What the servers were doing is gone once they stop: print it now.
			fmt.Print(serverState(ctx, repl))
		}
	}
	others := make([]string, 0, len(targets)-1)
	for _, tg := range targets[1:] {
		others = append(others, tg.name)
	}
	return report(os.Stdout, targets[0].name, others, results, o.verbose, proxy.log)
}

// differ reports whether a test passes in one result and not in the other.
func differ(a, b map[string]outcome) bool {
	for n, o := range a {
		if passDiffers(o, b[n]) {
			return true
		}
	}
	for n, o := range b {
		if passDiffers(o, a[n]) {
			return true
		}
	}
	return false
}

// passDiffers reports one outcome a pass and the other not (a fail, a skip, or not run).
func passDiffers(a, b outcome) bool { return (a.action == "pass") != (b.action == "pass") }

// serverState is what the primary and the replica are running and the replica's replication
// state, for a run whose tests differ (a statement waiting on a lock, a stopped replica).
func serverState(ctx context.Context, repl *testserver.Replication) string {
	var b strings.Builder
	for _, m := range []struct {
		name  string
		db    *testserver.MariaDB
		query string
	}{
		{"primary", repl.Primary, "SHOW FULL PROCESSLIST"},
		{"replica", repl.Replica, "SHOW FULL PROCESSLIST"},
		{"replica", repl.Replica, "SHOW SLAVE STATUS"},
	} {
		fmt.Fprintf(&b, "  %s: %s\n", m.name, m.query)
		rows, err := queryRows(ctx, m.db, m.query)
		if err != nil {
			fmt.Fprintf(&b, "    %v\n", err)
			continue
		}
		for _, r := range rows {
			fmt.Fprintf(&b, "    %s\n", r)
		}
	}
	return b.String()
}

// queryRows runs query as root and returns its rows, each as "column=value ..." (NULLs and
// empty values left out).
func queryRows(ctx context.Context, m *testserver.MariaDB, query string) ([]string, error) {
	db, err := sql.Open("mysql", m.DSN("root"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var fields []string
		for i, v := range vals {
			if v.Valid && v.String != "" {
				fields = append(fields, cols[i]+"="+strings.ReplaceAll(v.String, "\n", " "))
			}
		}
		out = append(out, strings.Join(fields, " "))
	}
	return out, rows.Err()
}

// outcome is how one of the driver's top-level tests ended, with its output.
type outcome struct {
	action string // pass, fail, skip
	output string
}

func summary(r map[string]outcome) string {
	n := map[string]int{}
	for _, o := range r {
		n[o.action]++
	}
	return fmt.Sprintf("%d passed, %d failed, %d skipped", n["pass"], n["fail"], n["skip"])
}

// report prints the tests whose outcome differs between the direct run and each proxied one
// and returns an error when any passes directly and not through the proxy (or the reverse).
func report(w *os.File, base string, others []string, results []map[string]outcome, verbose bool, proxyLog string) error {
	names := map[string]bool{}
	for _, r := range results {
		for n := range r {
			names[n] = true
		}
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	})
	var rows [][]string
	for _, n := range sorted {
		row := []string{n, cmp.Or(results[0][n].action, "not-run")}
		differs := false
		for i := range others {
			row = append(row, cmp.Or(results[i+1][n].action, "not-run"))
			if passDiffers(results[i+1][n], results[0][n]) {
				differs = true
			}
		}
		if differs {
			rows = append(rows, row)
		}
	}
	fmt.Fprintf(w, "\n%d tests; outcome by target (only those that differ):\n", len(sorted))
	fmt.Fprintf(w, "%-40s %-8s", "test", base)
	for _, o := range others {
		fmt.Fprintf(w, " %-13s", o)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "%-40s %-8s", r[0], r[1])
		for _, a := range r[2:] {
			fmt.Fprintf(w, " %-13s", a)
		}
		fmt.Fprintln(w)
	}
	totals := []string{fmt.Sprintf("%s: %s", base, summary(results[0]))}
	for i, o := range others {
		totals = append(totals, fmt.Sprintf("%s: %s", o, summary(results[i+1])))
	}
	fmt.Fprintln(w, strings.Join(totals, "; "))
	if len(rows) == 0 {
		fmt.Fprintln(w, "conformance ok: the same tests pass directly and through mysql-proxy")
		return nil
	}
	if verbose && proxyLog != "" {
		if b, err := os.ReadFile(proxyLog); err == nil {
			fmt.Fprintf(w, "\n--- mysql-proxy's log (last 4 KiB):\n%s\n", tail(b, 4096))
		}
	}
	return failures(w, rows, others, results, verbose)
}

// failures prints the failures last, where a CI log's tail shows them: the tests that failed
// through the proxy, then how a test binary that ended early ended (a timeout's or a panic's
// output); it returns the error that names them.
func failures(w *os.File, rows [][]string, others []string, results []map[string]outcome, verbose bool) error {
	var failed, missing []string
	for _, r := range rows {
		for i, o := range others {
			out, ran := results[i+1][r[0]]
			switch {
			case !ran:
				missing = append(missing, r[0]+" through "+o)
			case out.action == "fail":
				failed = append(failed, r[0]+" through "+o)
				if verbose {
					fmt.Fprintf(w, "\n--- %s through %s:\n%s", r[0], o, tail([]byte(out.output), 3072))
				}
			}
		}
	}
	if out, ok := endedEarly(results); ok {
		fmt.Fprintf(w, "\n--- the driver's test binary ended early:\n%s\n", out)
	}
	first := failed[:min(len(failed), 8)]
	if len(missing) > 0 {
		first = append(first, fmt.Sprintf("%d never ran, first %s", len(missing), missing[0]))
	}
	return fmt.Errorf("%d of the driver's tests do not pass through mysql-proxy as they do directly (%s)", len(rows), strings.Join(first, "; "))
}

// endedEarly is the panic of a run whose test binary did not finish (a timeout names the tests
// it was running).
func endedEarly(results []map[string]outcome) (string, bool) {
	for _, r := range results {
		if o, ok := r[packagePanic]; ok {
			return o.output, true
		}
	}
	return "", false
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// driverSource is a writable copy of the driver module's source (with its tests), from the Go
// module proxy.
func driverSource(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", driverModule+"@"+driverVersion).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", driverModule, driverVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: no directory in %s", driverModule, driverVersion, out)
	}
	dst := filepath.Join(dir, "driver")
	if out, err := exec.CommandContext(ctx, "cp", "-r", mod.Dir, dst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copying the driver: %v: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "chmod", "-R", "u+w", dst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("chmod: %v: %s", err, out)
	}
	return dst, nil
}

// runTests runs the driver's tests against addr and returns each top-level test's outcome;
// go test's JSON goes to the file record too.
func runTests(ctx context.Context, src, addr, only string, count int, record string) (map[string]outcome, error) {
	rec, err := os.Create(record)
	if err != nil {
		return nil, err
	}
	defer rec.Close()
	args := []string{"test", "-json", "-count=" + strconv.Itoa(count), "-timeout", (time.Duration(count) * driverTimeout).String(), "-skip", skipped}
	if only != "" {
		args = append(args, "-run", only)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "MYSQL_TEST_USER="+testUser, "MYSQL_TEST_PASS="+testPassword, "MYSQL_TEST_PROT=tcp",
		"MYSQL_TEST_ADDR="+addr, "MYSQL_TEST_DBNAME="+testDB, "MYSQL_TEST_CONCURRENT=1", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	results := map[string]outcome{}
	outputs := map[string]*strings.Builder{}
	var running strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		rec.Write(append(sc.Bytes(), '\n'))
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Test == "" {
			// The package's own output: a timeout's panic names the tests still running.
			if ev.Action == "output" && (strings.HasPrefix(ev.Output, "panic: ") || running.Len() > 0) && running.Len() < 4<<10 {
				running.WriteString(ev.Output)
			}
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		if outputs[top] == nil {
			outputs[top] = &strings.Builder{}
		}
		if ev.Action == "output" && outputs[top].Len() < 64<<10 {
			outputs[top].WriteString(ev.Output)
		}
		if ev.Test == top && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip") {
			if results[top].action != "fail" { // with -count, one failure of several runs stands
				results[top] = outcome{action: ev.Action, output: outputs[top].String()}
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, err
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("no test ran: %v\n%s", err, stderr.String())
	}
	if running.Len() > 0 {
		results[packagePanic] = outcome{action: "fail", output: running.String()}
	}
	return results, nil
}

func rootExec(ctx context.Context, m *testserver.MariaDB, stmts ...string) error {
	db, err := sql.Open("mysql", m.DSN("root"))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// proxyProc is mysql-proxy run for the conformance test.
type proxyProc struct {
	cmd                           *exec.Cmd
	primaryOnly, split, multiplex string // the listeners ("" when the config has no such one)
	log                           string
	exited                        chan error
	stopOnce                      sync.Once
}

// stop ends the proxy (once; later calls return at once).
func (p *proxyProc) stop() {
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// driverProxyConfig is mysql-proxy's configuration for the driver's tests: three listeners,
// "direct" (only the primary), "db" (the primary, and the replica for reads) and "mux" (as db,
// with multiplexing: server connections change hands after each statement), over TLS to the
// servers (verified with ca), as the driver's TLS tests see the server's session.
func driverProxyConfig(repl *testserver.Replication, ca string) func(ports []int) string {
	return func(ports []int) string {
		up := func(name string, m *testserver.MariaDB) string {
			return fmt.Sprintf("  %s: {typ: mysql, user: %s, pass: %s, timeout: 2, tls: {mode: required, ca: %q}, servers: [{host: 127.0.0.1, port: %d}]}\n",
				name, testUser, testPassword, ca, m.Port)
		}
		return fmt.Sprintf(`admin: {listen: "127.0.0.1:%d"}
http: {listen: ""}
checkups: {interval: 1s}
listeners:
  - {listen: "127.0.0.1:%d", upstream: direct}
  - {listen: "127.0.0.1:%d", upstream: db}
  - {listen: "127.0.0.1:%d", upstream: mux, multiplex: true}
users:
  - {name: %s, password: %s}
upstreams:
`, ports[0], ports[1], ports[2], ports[3], testUser, testPassword) + up("direct", repl.Primary) + up("db", repl.Primary) + up("db_read", repl.Replica) +
			up("mux", repl.Primary) + up("mux_read", repl.Replica)
	}
}

// startProxy runs mysql-proxy with the configuration config makes from four free ports (the
// admin listener's, then the primary-only, split and multiplexed listeners').
func startProxy(ctx context.Context, bin, dir string, config func(ports []int) string) (*proxyProc, error) {
	ports := make([]int, 4)
	for i := range ports {
		p, err := testserver.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	path := filepath.Join(dir, "mysql-proxy.yaml")
	if err := os.WriteFile(path, []byte(config(ports)), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "mysql-proxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proxyProc{primaryOnly: "127.0.0.1:" + strconv.Itoa(ports[1]), split: "127.0.0.1:" + strconv.Itoa(ports[2]),
		multiplex: "127.0.0.1:" + strconv.Itoa(ports[3]), log: logPath, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, "--config", path)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (make conformance builds it): %w", bin, err)
	}
	go func() { p.exited <- p.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("mysql-proxy started")) {
			return p, nil
		}
		select {
		case err := <-p.exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("mysql-proxy exited: %v\n%s", err, b)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, errors.New("mysql-proxy did not start within 20s")
		}
	}
}
