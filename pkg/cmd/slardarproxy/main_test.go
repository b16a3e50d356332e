package slardarproxy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
)

// Two real MariaDB servers shared by the tests of this package.
var dbA, dbB *testserver.MariaDB

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Binaries the tests start serve no HTTP endpoint unless a test asks (its default port
	// would be shared by every test process).
	os.Setenv("SLARDAR_HTTP_LISTEN", "")
	// Connections the tests kill on purpose make the driver log; keep the output readable.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	dir, err := os.MkdirTemp("", "slardarproxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	for _, p := range []**testserver.MariaDB{&dbA, &dbB} {
		sub, _ := os.MkdirTemp(dir, "db-")
		if *p, err = testserver.StartMariaDB(ctx, sub, 0); err != nil {
			fmt.Fprintln(os.Stderr, "starting MariaDB (make test installs it):", err)
			return 1
		}
		defer (*p).Stop()
	}
	return m.Run()
}

// startDaemon runs slardar-proxy in-process with an admin port and one listener for upstream
// "3131", both on free loopback ports.
func startDaemon(t *testing.T, mutate func(*config.File)) *Daemon {
	t.Helper()
	cfg := &config.File{
		Common: config.Common{
			Admin:    config.Admin{Listen: "127.0.0.1:0"},
			Checkups: config.Checkups{Interval: 200 * time.Millisecond},
			Proxy:    config.Proxy{ShutdownGrace: 2 * time.Second},
		},
		Listeners: []config.Listener{{Listen: "127.0.0.1:0", Upstream: "3131"}},
	}
	if mutate != nil {
		mutate(cfg)
	}
	return startDaemonConfig(t, func() (*config.File, error) { return cfg, nil })
}

// startDaemonConfig runs slardar-proxy in-process with the given config loader.
func startDaemonConfig(t *testing.T, load func() (*config.File, error)) *Daemon {
	t.Helper()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := load()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	d, err := Start(ctx, slog.New(slog.NewTextHandler(w, nil)), cfg, load)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	return d
}

// adminDo sends one admin command to the daemon and returns the reply.
func adminDo(t *testing.T, d *Daemon, method, topic, name string, body []byte) admin.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := admin.Do(ctx, d.AdminAddr(), "", method, topic, name, body)
	var re *admin.ReplyError
	if err != nil && !errors.As(err, &re) {
		t.Fatal(err)
	}
	return r
}

func putUpstream(t *testing.T, d *Daemon, body string) {
	t.Helper()
	if r := adminDo(t, d, "PUT", "upstream", "3131", []byte(body)); r.Type != admin.TypeOK {
		t.Fatalf("PUT upstream: %s", r.Data)
	}
}

// mysqlPort asks, with the real mariadb client through the proxy, which backend answered.
func mysqlPort(t *testing.T, proxyAddr string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(proxyAddr, ":")
	out, err := exec.Command("mariadb", "--no-defaults", "-h", host, "-P", port, "-u", testserver.User,
		"-p"+testserver.Password, "--connect-timeout=5", "--skip-column-names", "-e", "select @@port", testserver.Database).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb client: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func twoServers(extra string) string {
	return fmt.Sprintf(`{%s"cluster":[{"servers":[{"host":"127.0.0.1","port":%d},{"host":"127.0.0.1","port":%d}]}]}`,
		extra, dbA.Port, dbB.Port)
}

// status returns the checkups status of upstream 3131, level 1.
func status(t *testing.T, d *Daemon) []checkups.ServerStatus {
	t.Helper()
	r := adminDo(t, d, "GET", "upstream", "status", nil)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatalf("status %s: %v", r.Data, err)
	}
	var levels [][]checkups.ServerStatus
	if err := json.Unmarshal(m["cls:3131"], &levels); err != nil {
		t.Fatalf("cls:3131 %s: %v", m["cls:3131"], err)
	}
	return levels[0]
}

func openDB(t *testing.T, addr string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=5s", testserver.User, testserver.Password, addr, testserver.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
