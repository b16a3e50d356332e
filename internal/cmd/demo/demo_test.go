package main

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// TestDemoSmoke runs `make demo`'s program in its checking mode: a real MariaDB primary and
// replica, a real etcd, the real binaries, the real mysql client; the walkthrough it prints and
// README's sh blocks are run as written, in their order.
func TestDemoSmoke(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{"slardar-proxy", "mysql-proxy", "store-sync", "slardarctl"} {
		if _, err := testutil.Build(bin, name); err != nil {
			t.Fatal(err)
		}
	}
	admin, _ := testserver.FreePort()
	data, _ := testserver.FreePort()
	luaPort, _ := testserver.FreePort()
	mysqlAdmin, _ := testserver.FreePort()
	mysqlData, _ := testserver.FreePort()
	web, _ := testserver.FreePort()
	mysqlWeb, _ := testserver.FreePort()
	syncWeb, _ := testserver.FreePort()
	out, err := exec.Command("go", "run", ".", "--smoke",
		"-proxy", filepath.Join(bin, "slardar-proxy"), "-mysql-proxy", filepath.Join(bin, "mysql-proxy"), "-store-sync", filepath.Join(bin, "store-sync"), "-ctl", filepath.Join(bin, "slardarctl"),
		"-http-port", strconv.Itoa(web), "-mysql-http-port", strconv.Itoa(mysqlWeb), "-sync-http-port", strconv.Itoa(syncWeb),
		"-admin-port", strconv.Itoa(admin), "-port", strconv.Itoa(data), "-lua-port", strconv.Itoa(luaPort),
		"-mysql-admin-port", strconv.Itoa(mysqlAdmin), "-mysql-port", strconv.Itoa(mysqlData), "-db1", "0", "-db2", "0",
		"-readme", "../../../README.md").CombinedOutput()
	if err != nil {
		t.Fatalf("demo --smoke: %v\n%s", err, out)
	}
	for _, want := range []string{"smoke: round robin reached ports", "smoke: Hello, Lua!", "Ctrl-C stops everything", "STATUS", "smoke: mysql-proxy read on", "reached slardar-proxy through store-sync", "slardar_connections_total",
		`smoke: ran step "Metrics, health and drain"`, `applying every change to slardar-proxy"`, "smoke: ran README's sh blocks"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}
