package slardarproxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// buildBinary builds slardar-proxy once per test run.
// SLARDAR_PROXY_BIN runs the tests against another build (an older one, to see a test fail).
var buildBinary = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("SLARDAR_PROXY_BIN"); bin != "" {
		return bin, nil
	}
	dir, err := os.MkdirTemp("", "slardar-bin-")
	if err != nil {
		return "", err
	}
	return testutil.Build(dir, "slardar-proxy")
})

func writeConfig(t *testing.T, path string, adminPort, dataPort, backend int) {
	t.Helper()
	cfg := fmt.Sprintf(`admin:
  listen: 127.0.0.1:%d
proxy:
  shutdown_grace: 20s
checkups:
  interval: 1s
listeners:
  - listen: 127.0.0.1:%d
    upstream: "3131"
upstreams:
  "3131":
    typ: mysql
    user: %s
    pass: %s
    name: %s
    cluster:
      - servers:
          - {host: 127.0.0.1, port: %d}
`, adminPort, dataPort, testserver.User, testserver.Password, testserver.Database, backend)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSignalsReloadAndDrain(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, _ := testserver.FreePort()
	dataPort, _ := testserver.FreePort()
	cfgPath := filepath.Join(t.TempDir(), "slardar.yaml")
	writeConfig(t, cfgPath, adminPort, dataPort, dbA.Port)

	var stderr testutil.SyncBuffer
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	proxy := net.JoinHostPort("127.0.0.1", strconv.Itoa(dataPort))
	testutil.WaitFor(t, "proxy up", 10*time.Second, func() bool {
		p, err := mysqlPort(t, proxy)
		return err == nil && p == strconv.Itoa(dbA.Port)
	})

	// A connection that stays open across the reload and the shutdown.
	db := openDB(t, proxy)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var port int
	if err := conn.QueryRowContext(ctx, "select @@port").Scan(&port); err != nil || port != dbA.Port {
		t.Fatalf("long connection: %d %v", port, err)
	}

	writeConfig(t, cfgPath, adminPort, dataPort, dbB.Port)
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "reload to take effect", 5*time.Second, func() bool {
		p, err := mysqlPort(t, proxy)
		return err == nil && p == strconv.Itoa(dbB.Port)
	})
	if err := conn.QueryRowContext(ctx, "select @@port").Scan(&port); err != nil || port != dbA.Port {
		t.Fatalf("long connection after reload: %d %v", port, err)
	}

	// A broken config on reload changes nothing.
	os.WriteFile(cfgPath, []byte("listeners: [{listen: 127.0.0.1:1, bogus: 1}]\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "reload error logged", 5*time.Second, func() bool { return strings.Contains(stderr.String(), "config not reloaded") })
	if p, err := mysqlPort(t, proxy); err != nil || p != strconv.Itoa(dbB.Port) {
		t.Fatalf("after a bad reload: %s %v", p, err)
	}

	// SIGTERM: the listener closes at once, the open connection is served until it ends.
	cmd.Process.Signal(syscall.SIGTERM)
	testutil.WaitFor(t, "listener closed", 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", proxy, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := conn.QueryRowContext(ctx, "select @@port").Scan(&port); err != nil || port != dbA.Port {
		t.Fatalf("open connection while draining: %d %v", port, err)
	}
	select {
	case err := <-exited:
		t.Fatalf("exited before the open connection ended: %v\n%s", err, stderr.String())
	default:
	}
	conn.Close()
	db.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("did not exit after the last connection closed\n%s", stderr.String())
	}
	for _, want := range []string{"config reloaded", "draining connections", "msg=conn"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestStartupMessagesAndErrors(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, _ := testserver.FreePort()
	var stderr testutil.SyncBuffer
	cmd := exec.Command(bin, "--admin-listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort)))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "admin-only start message", 5*time.Second, func() bool {
		return strings.Contains(stderr.String(), "no listeners configured")
	})
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("admin:\n  listne: 1\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{name: "unknown config key", args: []string{"--config", bad}, code: 2, msg: "field listne not found"},
		{name: "missing config", args: []string{"--config", "/nonexistent.yaml"}, code: 2, msg: "no such file"},
		{name: "bad listen", args: []string{"--listen", "nope"}, code: 2, msg: "want PORT or HOST:PORT"},
		{name: "public admin without token", args: []string{"--admin-listen", "0.0.0.0:0"}, code: 1, msg: "is not loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(bin, tt.args...).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != tt.code || !strings.Contains(string(out), tt.msg) {
				t.Fatalf("got %v, %q; want exit %d with %q", err, out, tt.code, tt.msg)
			}
		})
	}
}
