// Package testserver starts real servers (MariaDB now; Consul and etcd as the issues that need
// them arrive) as local processes on loopback ports with their own data directories, for the
// tests, the benchmarks and `make demo`.
package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Credentials provisioned in every MariaDB started here (the talk's test environment).
const (
	RootPassword = "root"
	User         = "runner"
	Password     = "runner123456"
	Database     = "upyun"
)

// MariaDB is one mariadbd process.
type MariaDB struct {
	Port int
	Dir  string
	Log  io.Writer // where mariadbd's stderr goes; default: Dir/mariadbd.log only
	// Args are more mariadbd options (replication: --log-bin, --server-id, ...).
	Args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan error
}

// Addr is 127.0.0.1:port.
func (m *MariaDB) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)) }

// DSN is a go-sql-driver DSN for user (root or runner).
func (m *MariaDB) DSN(user string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = user, "tcp", m.Addr()
	cfg.Passwd = Password
	if user == "root" {
		cfg.Passwd = RootPassword
	}
	cfg.DBName = Database
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// StartMariaDB starts a MariaDB server with a fresh copy of the provisioned datadir in dir, on
// port (0: a free one), and waits until it accepts logins.
func StartMariaDB(ctx context.Context, dir string, port int, args ...string) (*MariaDB, error) {
	tmpl, err := template(ctx)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if err := exec.CommandContext(ctx, "cp", "-a", tmpl, filepath.Join(dir, "data")).Run(); err != nil {
		return nil, fmt.Errorf("copying mariadb datadir: %w", err)
	}
	m := &MariaDB{Port: port, Dir: dir, Args: args}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func mariadbdArgs(dir string, port int, extra []string) []string {
	args := []string{"--no-defaults",
		"--datadir=" + filepath.Join(dir, "data"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		// A temporary directory of its own: a server starting removes every #sql file of its
		// tmpdir, and with /tmp shared it removed the temporary tables of servers other tests
		// were running ("Error on delete of '/tmp/#sql-temptable-...'", found by stress.sh).
		"--tmpdir=" + filepath.Join(dir, "tmp"),
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=64M",
		"--max-connections=1000",
	}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--log-bin") }) {
		args = append(args, "--skip-log-bin")
	}
	args = append(args, extra...)
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// Start (re)starts the server on its port and datadir and waits until it accepts logins. It
// does nothing if the server is running.
func (m *MariaDB) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return nil
	}
	done, err := m.spawn()
	if err != nil {
		return err
	}
	if err := waitLogin(ctx, m.DSN("root"), done); err != nil {
		m.cmd.Process.Kill()
		<-done
		m.cmd = nil
		return fmt.Errorf("mariadb on port %d did not come up (log: %s): %w", m.Port, filepath.Join(m.Dir, "mariadbd.log"), err)
	}
	return nil
}

// spawn starts mariadbd on the instance's datadir and port, logging to Dir/mariadbd.log (and
// Log); the returned channel yields its exit. The caller holds m.mu.
func (m *MariaDB) spawn() (<-chan error, error) {
	if err := os.MkdirAll(filepath.Join(m.Dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(m.Dir, "mariadbd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(mariadbd(), mariadbdArgs(m.Dir, m.Port, m.Args)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if m.Log != nil {
		cmd.Stderr = io.MultiWriter(logf, m.Log)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting mariadbd: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	m.cmd, m.done = cmd, done
	return done, nil
}

func waitLogin(ctx context.Context, dsn string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		err = db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case e := <-exited:
			return fmt.Errorf("mariadbd exited: %v", e)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 20s).
func (m *MariaDB) Stop() error { return m.signal(syscall.SIGTERM, 20*time.Second) }

// Kill kills the server at once, as a crash would.
func (m *MariaDB) Kill() error { return m.signal(syscall.SIGKILL, 10*time.Second) }

// Freeze stops the server's process (SIGSTOP), as a host that hangs: its sockets stay open and
// its kernel still accepts connections, but it answers nothing until Thaw.
func (m *MariaDB) Freeze() error { return m.pause(syscall.SIGSTOP) }

// Thaw lets a frozen server run again (SIGCONT).
func (m *MariaDB) Thaw() error { return m.pause(syscall.SIGCONT) }

func (m *MariaDB) pause(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return fmt.Errorf("mariadb on port %d is not running", m.Port)
	}
	return m.cmd.Process.Signal(sig)
}

func (m *MariaDB) signal(sig syscall.Signal, wait time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(wait):
		m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
	return nil
}

func mariadbd() string {
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	return "mariadbd"
}

var (
	tmplOnce sync.Once
	tmplDir  string
	tmplErr  error
)

// template returns a datadir initialised and provisioned once per machine (cached under the
// user cache directory, keyed by the server version) that instances copy.
func template(ctx context.Context) (string, error) {
	tmplOnce.Do(func() { tmplDir, tmplErr = buildTemplate(ctx) })
	return tmplDir, tmplErr
}

func buildTemplate(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, mariadbd(), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("mariadbd not found (run scripts/install-deps.sh): %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	key := fmt.Sprintf("%x", hashBytes(out))
	final := filepath.Join(cache, "slardar", "mariadb-template-"+key)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(final + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(final, "data", "provisioned")); err == nil {
		return filepath.Join(final, "data"), nil
	}
	work, err := os.MkdirTemp(filepath.Dir(final), "mariadb-template-tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	install := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(work, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if os.Geteuid() == 0 {
		install.Args = append(install.Args, "--user=root")
	}
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	m := &MariaDB{Port: port, Dir: work}
	// First start: root has no password yet.
	if err := m.startProvisioning(ctx); err != nil {
		return "", err
	}
	if err := m.Stop(); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(work, "data", "provisioned"), out, 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(final)
	if err := os.Rename(work, final); err != nil {
		return "", err
	}
	return filepath.Join(final, "data"), nil
}

// startProvisioning starts a freshly installed server (root without a password yet) and
// creates the users and database every instance has.
func (m *MariaDB) startProvisioning(ctx context.Context) error {
	m.mu.Lock()
	done, err := m.spawn()
	m.mu.Unlock()
	if err != nil {
		return err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.MultiStatements = "root", "tcp", m.Addr(), true
	if err := waitLogin(ctx, cfg.FormatDSN(), done); err != nil {
		return err
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS " + Database,
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", User, Password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%'", User),
		"DELETE FROM mysql.global_priv WHERE User = ''",
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		stmts = append(stmts, fmt.Sprintf("ALTER USER IF EXISTS 'root'@'%s' IDENTIFIED BY '%s'", host, RootPassword))
	}
	stmts = append(stmts, "FLUSH PRIVILEGES")
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("provisioning mariadb: %s: %w", s, err)
		}
	}
	return nil
}

func hashBytes(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// lockFile takes an exclusive lock on path, so concurrent test processes build the template once.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
