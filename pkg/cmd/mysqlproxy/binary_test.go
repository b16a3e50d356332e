package mysqlproxy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// binDir holds the binaries the tests build, once per run (removed by TestMain).
var binDir string

var built sync.Map // name → *sync.Once-guarded result

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// buildBinary builds cmd/<name> once per test run.
func buildBinary(t *testing.T, name string) string {
	t.Helper()
	v, _ := built.LoadOrStore(name, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() { b.path, b.err = testutil.Build(binDir, name) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// buildBinaries builds mysql-proxy and slardarctl.
func buildBinaries(t *testing.T) (proxy, ctl string) {
	return buildBinary(t, "mysql-proxy"), buildBinary(t, "slardarctl")
}

func buildCtl(t *testing.T) string { return buildBinary(t, "slardarctl") }

// TestShippedExample runs the binary on examples/mysql-proxy.yaml, its addresses moved to the
// test servers: the split, the backend account, slardarctl status, SIGHUP and SIGTERM.
func TestShippedExample(t *testing.T) {
	proxy, ctl := buildBinaries(t)
	example, err := os.ReadFile("../../../examples/mysql-proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	adminPort, _ := testserver.FreePort()
	dataPort, _ := testserver.FreePort()
	admin, data := fmt.Sprintf("127.0.0.1:%d", adminPort), fmt.Sprintf("127.0.0.1:%d", dataPort)
	cfg := strings.NewReplacer("127.0.0.1:1896", admin, "127.0.0.1:3141", data, "schema: test", "schema: "+testserver.Database,
		"port: 3306}", fmt.Sprintf("port: %d}", repl.Primary.Port), "port: 3307}", fmt.Sprintf("port: %d}", repl.Replica.Port),
		"          - {host: 127.0.0.1, port: 3308}\n", "").Replace(string(example))
	path := filepath.Join(t.TempDir(), "mysql-proxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := os.ReadFile("../../../examples/mysql-users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	usersPath := filepath.Join(filepath.Dir(path), "mysql-users.yaml")
	if err := os.WriteFile(usersPath, users, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd := exec.Command(proxy, "--config", path, "--users-file", usersPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	query := func(user, password, q string) (string, error) {
		return runCLI("-h", "127.0.0.1", "-P", fmt.Sprint(dataPort), "-u", user, "-p"+password, "--skip-column-names", "-e", q, testserver.Database)
	}
	testutil.WaitFor(t, "mysql-proxy up", 10*time.Second, func() bool {
		out, err := query("runner", "runner123456", "select @@server_id")
		return err == nil && out == "2"
	})
	// report logs in with its own password and reaches the servers as runner.
	if out, err := query("report", "report-secret", "select current_user(), @@server_id"); err != nil || out != "runner@%\t2" && out != "runner@localhost\t2" && out != "runner@127.0.0.1\t2" {
		t.Fatalf("backend account: %q %v", out, err)
	}
	if out, err := query("report", "runner123456", "select 1"); err == nil || !strings.Contains(out, "1045") {
		t.Fatalf("report with the backend password: %q %v", out, err)
	}
	out, err := exec.Command(ctl, "--addr", admin, "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "db_read") || !strings.Contains(string(out), fmt.Sprint(repl.Primary.Port)) {
		t.Fatalf("slardarctl status: %v\n%s", err, out)
	}

	// SIGHUP: a user added to the users file can log in; no restart.
	users = append(users, "- {name: late, password: late-secret, backend_user: runner, backend_password: runner123456}\n"...)
	if err := os.WriteFile(usersPath, users, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "config reloaded", 5*time.Second, func() bool { return strings.Contains(stderr.String(), "config reloaded") })
	if out, err := query("late", "late-secret", "select 1"); err != nil || out != "1" {
		t.Fatalf("user added by SIGHUP: %q %v\n%s", out, err, stderr.String())
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
}
