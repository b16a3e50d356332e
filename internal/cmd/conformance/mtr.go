package main

// The server's own test suite: mysql-test-run (mtr) in --extern mode runs a list of the
// server's tests (mysqltest scripts) against an already running server and writes what each
// printed. The same list is run against a fresh primary directly and against another fresh
// primary through a primary-only mysql-proxy listener; every test must print the same output,
// byte for byte, and end the same way. Outputs, not pass/fail against the recorded results,
// are compared: a test that fails directly because this server is not configured as mtr's own
// (a time zone, a file it leaves behind) must fail the same way through the proxy.
//
// A split listener is not compared: a statement that reads server state (SHOW VARIABLES, a
// global a test changed with SET GLOBAL on the primary) answers the replica's, by design.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
)

// mysqlTestDir is where Debian's mariadb-test package puts the suite (install-deps installs it).
const mysqlTestDir = "/usr/share/mysql/mysql-test"

// mtrTests is the default list: statements of every kind, prepared statements, stored
// programs and their cursors, multi-statements, session state (variables, temporary tables,
// locks, SET STATEMENT, transactions, XA), CHANGE USER and KILL, character sets, and the
// server's metadata. Tests that need a server restart or options of their own are skipped by
// mtr in --extern mode, the same way both runs.
//
// Left out: change_user, whose accounts have pre-4.1 password hashes (mysql_old_password, with
// secure_auth off), which the proxy cannot check and refuses; compress, which reads the
// server's Compression status (the client's link to the proxy is compressed, the proxy's to
// the server is not); mysql_client_test, which fails directly (it wants mtr's own server).
const mtrTests = "alter_table analyze auto_increment bulk_replace cast commit create " +
	"cte_recursive ctype_gbk ctype_utf8 delete derived distinct explain func_group func_json " +
	"func_str func_time group_by having information_schema insert insert_select join kill limit " +
	"lock multi_statement multi_update null order_by ps ps_11bugs ps_1general ps_ddl read_only " +
	"rename select set_statement show_check sp sp-cursor sp-error sp-prelocking sp-security " +
	"sp-vars sp_trans sql_mode subselect temp_table transaction_timeout trigger truncate " +
	"type_datetime type_decimal type_json union update user_var variables view win xa " +
	"ps_2myisam ps_3innodb sp-dynamic sp-code lock_multi flush grant2 set_password insert_update " +
	"select_found func_misc"

// mtrServerArgs are the options of mtr's own server configuration (include/default_mysqld.cnf)
// that the tests' recorded results assume.
// Names are resolved, as the tests' accounts 'user'@'localhost' expect of their clients
// (mtr's connect via the Unix socket; these via TCP from 127.0.0.1, which resolves to
// localhost).
var mtrServerArgs = []string{"--character-set-server=latin1", "--default-storage-engine=MyISAM",
	"--log-bin-trust-function-creators=1", "--local-infile=1", "--key-buffer-size=1M",
	"--sort-buffer-size=256K", "--max-heap-table-size=1M", "--connect-timeout=60", "--open-files-limit=1024",
	"--skip-name-resolve=0"}

// mtrOutcome is how one test ended (pass, fail, skipped) and what it printed.
type mtrOutcome struct {
	result string
	output []byte
}

// runMTR runs tests (names in the main suite) directly and through mysql-proxy and reports the
// tests whose outcome or output differs.
func runMTR(ctx context.Context, dir, proxyBin, tests string, verbose bool) error {
	if _, err := os.Stat(filepath.Join(mysqlTestDir, "mariadb-test-run.pl")); err != nil {
		return fmt.Errorf("the server's test suite is not installed (scripts/install-deps.sh installs mariadb-test): %w", err)
	}
	names := strings.Fields(tests)
	suite, err := shadowSuite(ctx, filepath.Join(dir, "mtr-root"))
	if err != nil {
		return err
	}
	// Both runs at once, each on its own server: most of a test's time is waiting.
	targets := []string{"direct", "primary-only"}
	results := make([]map[string]mtrOutcome, len(targets))
	errs := make([]error, len(targets))
	fmt.Printf("running %d of the server's own tests (mysql-test-run --extern) %s and %s ...\n", len(names), targets[0], targets[1])
	start := time.Now()
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Go(func() {
			results[i], errs[i] = mtrTarget(ctx, filepath.Join(dir, "mtr-"+target), suite, proxyBin, target != "direct", names)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("mysql-test-run %s: %w", target, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("  in %v\n", time.Since(start).Round(time.Second))
	var differ []string
	for _, n := range names {
		a, b := results[0][n], results[1][n]
		if a.result != b.result || !bytes.Equal(a.output, b.output) {
			differ = append(differ, n)
		}
	}
	fmt.Printf("\n%d of the server's tests; those whose output differs:\n", len(names))
	fmt.Printf("%-40s %-8s %s\n", "test", targets[0], targets[1])
	for _, n := range differ {
		fmt.Printf("%-40s %-8s %s\n", "main."+n, results[0][n].result, results[1][n].result)
		if verbose {
			fmt.Printf("%s\n", firstDifference(results[0][n].output, results[1][n].output))
		}
	}
	fmt.Printf("%s: %s; %s: %s\n", targets[0], mtrSummary(results[0]), targets[1], mtrSummary(results[1]))
	if len(differ) > 0 {
		return fmt.Errorf("%d of the server's own tests print otherwise through mysql-proxy than directly", len(differ))
	}
	fmt.Println("conformance ok: the server's tests print the same through mysql-proxy as directly")
	return nil
}

func mtrSummary(r map[string]mtrOutcome) string {
	n := map[string]int{}
	for _, o := range r {
		n[o.result]++
	}
	return fmt.Sprintf("%d passed, %d failed, %d skipped (against the recorded results)", n["pass"], n["fail"], n["skipped"])
}

// firstDifference is the first line where two outputs differ, with its line number.
func firstDifference(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y || i >= len(la) || i >= len(lb) {
			return fmt.Sprintf("  line %d:\n  - %.300s\n  + %.300s", i+1, x, y)
		}
	}
	return "  (the same output; the outcome differs)"
}

// shadowSuite is a private copy of the installed suite (symbolic links, so it costs a second),
// laid out as mtr expects its base directory (usr/bin beside usr/share/mysql/mysql-test), so
// that the files mtr writes beside the tests (.reject) stay out of the system's directory.
func shadowSuite(ctx context.Context, root string) (string, error) {
	share := filepath.Join(root, "usr", "share", "mysql")
	if err := os.MkdirAll(share, 0o755); err != nil {
		return "", err
	}
	for _, d := range []string{"bin", "sbin", "lib", "libexec"} {
		if err := os.Symlink(filepath.Join("/usr", d), filepath.Join(root, "usr", d)); err != nil {
			return "", err
		}
	}
	entries, err := os.ReadDir(filepath.Dir(mysqlTestDir))
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name() == filepath.Base(mysqlTestDir) {
			continue
		}
		if err := os.Symlink(filepath.Join(filepath.Dir(mysqlTestDir), e.Name()), filepath.Join(share, e.Name())); err != nil {
			return "", err
		}
	}
	if out, err := exec.CommandContext(ctx, "cp", "-rs", mysqlTestDir, share).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copying the test suite: %v: %s", err, out)
	}
	return filepath.Join(share, filepath.Base(mysqlTestDir)), nil
}

// mtrTarget starts a fresh server prepared as mtr prepares its own and runs the tests against
// it, through a primary-only mysql-proxy listener if proxied. Each test runs alone (its own
// mtr run), after the server was brought back to how it was prepared: mtr in --extern mode
// cannot restart the server between tests, and a test that died midway would otherwise leave
// tables, schemas, users and globals that change what every later test prints.
func mtrTarget(ctx context.Context, dir, suite, proxyBin string, proxied bool, names []string) (map[string]mtrOutcome, error) {
	// The server lives where mtr puts its own, in the var directory (mtr --extern leaves it
	// be): the tests' paths (../../std_data from the data directory, files they check under
	// MYSQLTEST_VARDIR) and secure_file_priv then hold as they do for mtr's server.
	vardir := filepath.Join(dir, "var")
	serverDir := filepath.Join(vardir, "mysqld.1")
	for _, d := range []string{serverDir, filepath.Join(vardir, "log"), filepath.Join(vardir, "run"), filepath.Join(vardir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	m, err := testserver.StartMariaDB(ctx, serverDir, 0, append([]string{"--log-bin=mariadb-bin", "--server-id=1",
		"--secure-file-priv=" + vardir}, mtrServerArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("starting MariaDB: %w", err)
	}
	defer m.Stop()
	schema, err := mtrSchema(suite)
	if err != nil {
		return nil, err
	}
	db, err := mtrBootstrap(ctx, m, schema)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	base, err := snapshot(ctx, db)
	if err != nil {
		return nil, err
	}
	addr := m.Addr()
	if proxied {
		p, err := startProxy(ctx, proxyBin, dir, mtrProxyConfig(m))
		if err != nil {
			return nil, err
		}
		defer p.stop()
		addr = p.primaryOnly
	}
	host, port, _ := strings.Cut(addr, ":")
	results := map[string]mtrOutcome{}
	var log bytes.Buffer
	defer func() { os.WriteFile(filepath.Join(dir, "mtr.out"), log.Bytes(), 0o644) }()
	for _, n := range names {
		if err := base.restore(ctx, db, filepath.Join(serverDir, "data"), schema); err != nil {
			return nil, fmt.Errorf("before main.%s: %w", n, err)
		}
		cmd := exec.CommandContext(ctx, "perl", "mariadb-test-run.pl", "--extern", "host="+host, "--extern", "port="+port,
			"--extern", "protocol=tcp", "--extern", "user=root", "--vardir="+vardir, "--force", "--max-test-fail=0",
			"--testcase-timeout=2", "main."+n) // minutes
		cmd.Dir = suite
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		log.Write(out.Bytes())
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return nil, err
		}
		o, ok := parseMTR(out.Bytes())[n]
		if !ok {
			return nil, fmt.Errorf("main.%s did not run: %v\n%s", n, err, tail(out.Bytes(), 4096))
		}
		printed, _ := os.ReadFile(filepath.Join(vardir, "log", n+".log"))
		o.output = clientPort.ReplaceAll(printed, []byte("${1}:PORT"))
		results[n] = o
	}
	return results, nil
}

// state is what a test may change of the server and must not leave to the next: schemas,
// accounts and global variables.
type state struct {
	schemas  map[string]bool
	accounts map[string]bool
	globals  map[string]string
}

// systemSchemas are never dropped (test is emptied).
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys", "mtr"}

func snapshot(ctx context.Context, db *sql.DB) (*state, error) {
	st := &state{schemas: map[string]bool{}, accounts: map[string]bool{}, globals: map[string]string{}}
	for q, into := range map[string]map[string]bool{
		"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA":                 st.schemas,
		"SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.global_priv": st.accounts,
	} {
		vals, err := column(ctx, db, q)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			into[v] = true
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		st.globals[k] = v.String
	}
	return st, rows.Err()
}

// restore brings the server back to st: the test schema emptied, schemas and accounts created
// since dropped, global variables set back (those that cannot be set are left).
func (st *state) restore(ctx context.Context, db *sql.DB, datadir string, schema []string) error {
	now, err := snapshot(ctx, db)
	if err != nil {
		return err
	}
	for k, v := range now.globals {
		if was, ok := st.globals[k]; ok && was != v {
			value := "'" + strings.ReplaceAll(strings.ReplaceAll(was, `\`, `\\`), "'", "''") + "'"
			if _, err := strconv.ParseFloat(was, 64); err == nil {
				value = was
			}
			db.ExecContext(ctx, "SET GLOBAL "+k+" = "+value) // read-only ones stay as they are
		}
	}
	for a := range now.accounts {
		if !st.accounts[a] {
			if _, err := db.ExecContext(ctx, "DROP USER IF EXISTS "+a); err != nil {
				return err
			}
		}
	}
	db.ExecContext(ctx, "UNLOCK TABLES")
	for s := range now.schemas {
		if s != "test" && (st.schemas[s] || slices.Contains(systemSchemas, s)) {
			continue
		}
		quoted := "`" + strings.ReplaceAll(s, "`", "``") + "`"
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoted); err != nil {
			// Files a test wrote into the schema's directory (SELECT ... INTO OUTFILE) keep it.
			os.RemoveAll(filepath.Join(datadir, s))
			db.ExecContext(ctx, "FLUSH TABLES")
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoted); err != nil {
				return err
			}
		}
	}
	os.RemoveAll(filepath.Join(datadir, "test"))
	_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS test CHARACTER SET latin1 COLLATE latin1_swedish_ci")
	if err != nil {
		return err
	}
	return execAll(ctx, db, schema) // the mtr schema again, as tests change mysql.proc
}

// execAll runs stmts in one session (a USE applies to what follows).
func execAll(ctx context.Context, db *sql.DB, stmts []string) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.200s: %w", s, err)
		}
	}
	return nil
}

func column(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// clientPort is a client's port as SHOW PROCESSLIST prints it, which no two runs share.
var clientPort = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):[0-9]+\b`)

// mtrLine is mtr's report of one test: "main.select    [ pass ]   123".
var mtrLine = regexp.MustCompile(`^main\.(\S+)\s+\[ (pass|fail|skipped) \]`)

func parseMTR(out []byte) map[string]mtrOutcome {
	results := map[string]mtrOutcome{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if m := mtrLine.FindSubmatch(sc.Bytes()); m != nil {
			results[string(m[1])] = mtrOutcome{result: string(m[2])}
		}
	}
	return results
}

// mtrProxyConfig is mysql-proxy's configuration for the suite: the server as the only one,
// root (whom the tests log in as, without a password) learned from it, and no idle pooled
// connections: tests wait for a disconnected client's thread to leave the server's processlist
// (include/wait_until_count_sessions.inc), which a pooled connection outlives.
func mtrProxyConfig(m *testserver.MariaDB) func(ports []int) string {
	return func(ports []int) string {
		return fmt.Sprintf(`admin: {listen: "127.0.0.1:%d"}
http: {listen: ""}
checkups: {interval: 1s}
mysql: {pool: {max_idle: 0}}
listeners:
  - {listen: "127.0.0.1:%d", upstream: direct}
upstreams:
  direct: {typ: mysql, user: root, pass: "", timeout: 2, servers: [{host: 127.0.0.1, port: %d}]}
`, ports[0], ports[1], m.Port)
	}
}

// mtrSchema is what mtr's bootstrap creates for itself: the mtr schema with its warning
// suppressions and check procedures.
func mtrSchema(suite string) ([]string, error) {
	stmts := []string{"DROP DATABASE IF EXISTS mtr", "CREATE DATABASE mtr CHARSET=latin1", "USE mtr"}
	for _, f := range []string{"mtr_warnings.sql", "mtr_check.sql"} {
		b, err := os.ReadFile(filepath.Join(suite, "include", f))
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, sqlStatements(string(b))...)
	}
	return stmts, nil
}

// mtrBootstrap does to a server what mtr's bootstrap does to its own: the test database, the
// test time zones, the mtr schema, and root without a password (as the tests connect). It
// returns root's handle, for restoring the server between tests.
func mtrBootstrap(ctx context.Context, m *testserver.MariaDB, schema []string) (*sql.DB, error) {
	stmts := []string{"CREATE DATABASE IF NOT EXISTS test CHARACTER SET latin1 COLLATE latin1_swedish_ci", "USE mysql"}
	tz, err := os.ReadFile(filepath.Join(filepath.Dir(mysqlTestDir), "mysql_test_data_timezone.sql"))
	if err != nil {
		return nil, err
	}
	stmts = append(append(stmts, sqlStatements(string(tz))...), schema...)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		stmts = append(stmts, fmt.Sprintf("ALTER USER IF EXISTS 'root'@'%s' IDENTIFIED BY ''", host))
	}
	cfg, err := mysql.ParseDSN(m.DSN("root"))
	if err != nil {
		return nil, err
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := execAll(ctx, db, stmts); err != nil {
		return nil, fmt.Errorf("preparing the server for mysql-test-run: %w", err)
	}
	cfg.Passwd = "" // as the tests log in
	root, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	root.SetMaxIdleConns(0) // no session of its own while a test counts the server's
	return root, nil
}

// sqlStatements splits an SQL file the way mtr's bootstrap reads it: "delimiter X" lines
// change the delimiter, a line ending with it ends a statement, "--" lines are comments.
func sqlStatements(text string) []string {
	var stmts []string
	delim := ";"
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if d, ok := strings.CutPrefix(line, "delimiter "); ok {
			delim = strings.TrimSuffix(d, delim)
			continue
		}
		if strings.HasSuffix(line, delim) {
			cur.WriteString(strings.TrimSuffix(line, delim))
			if s := strings.TrimSpace(cur.String()); s != "" {
				stmts = append(stmts, s)
			}
			cur.Reset()
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line + "\n")
	}
	return stmts
}
