package main

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/slardar-go/slardar/internal/testserver"
)

// TestDemoSmoke runs `make demo`'s program in its checking mode: two real MariaDB servers, the
// real binaries, the real mysql client.
func TestDemoSmoke(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{"slardar-proxy", "slardarctl"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "github.com/slardar-go/slardar/cmd/"+name).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	admin, _ := testserver.FreePort()
	data, _ := testserver.FreePort()
	luaPort, _ := testserver.FreePort()
	out, err := exec.Command("go", "run", ".", "--smoke",
		"-proxy", filepath.Join(bin, "slardar-proxy"), "-ctl", filepath.Join(bin, "slardarctl"),
		"-admin-port", strconv.Itoa(admin), "-port", strconv.Itoa(data), "-lua-port", strconv.Itoa(luaPort), "-db1", "0", "-db2", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("demo --smoke: %v\n%s", err, out)
	}
	for _, want := range []string{"smoke: round robin reached ports", "smoke: Hello, Lua!", "Ctrl-C stops everything", "STATUS"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}
