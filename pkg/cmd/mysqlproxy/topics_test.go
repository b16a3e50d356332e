package mysqlproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/store"
	"github.com/slardar-go/slardar/pkg/syncer"
)

// TestRuntimeUsers: a user PUT with slardarctl logs in with the real client at once (no
// restart), is listed without its password, survives a reload, and after DELETE is refused.
func TestRuntimeUsers(t *testing.T) {
	cfg := proxyConfig(t, "mysql: {learn_users: false}\n")
	d, addr := startProxy(t, cfg)
	ctl := buildCtl(t)
	a := "--addr=" + d.AdminAddr()
	login := func() (string, error) {
		host, port, _ := strings.Cut(addr, ":")
		return runCLI("-h", host, "-P", port, "-u", "app", "-papp-secret", "--skip-column-names", "-e", "select current_user(), database()")
	}
	if out, err := login(); err == nil {
		t.Fatalf("an unknown user logged in: %s", out)
	}
	put := exec.Command(ctl, a, "mysql", "user", "put", "app", "-f", "-")
	put.Stdin = strings.NewReader("password: app-secret\nbackend_user: " + testserver.User + "\nbackend_password: " + testserver.Password + "\nschema: " + testserver.Database + "\n")
	if out, err := put.CombinedOutput(); err != nil {
		t.Fatalf("user put: %v\n%s", err, out)
	}
	if out, err := login(); err != nil || !strings.HasPrefix(out, testserver.User+"@") || !strings.HasSuffix(out, testserver.Database) {
		t.Fatalf("login as the user put at run time: %q %v", out, err)
	}
	out, err := exec.Command(ctl, a, "-o", "json", "mysql", "user", "list").CombinedOutput()
	var users map[string]struct{ Source, Password, BackendPassword string }
	if err != nil || json.Unmarshal(out, &users) != nil || users["app"].Source != "admin" || users[testserver.User].Source != "config" {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "app-secret") || strings.Contains(string(out), testserver.Password) {
		t.Fatalf("user list shows a password:\n%s", out)
	}
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out, err := login(); err != nil {
		t.Fatalf("after a reload: %q %v", out, err)
	}
	bad := exec.Command(ctl, a, "mysql", "user", "put", "x", "-f", "-")
	bad.Stdin = strings.NewReader(`{"password":"p","auht":"mysql_native_password"}`)
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "auht") {
		t.Fatalf("a user with an unknown field: %v\n%s", err, out)
	}
	if out, err := exec.Command(ctl, a, "mysql", "user", "delete", testserver.User).CombinedOutput(); err == nil || !strings.Contains(string(out), "from the config file") {
		t.Fatalf("deleting a config user: %v\n%s", err, out)
	}
	if out, err := exec.Command(ctl, a, "mysql", "user", "delete", "app").CombinedOutput(); err != nil {
		t.Fatalf("user delete: %v\n%s", err, out)
	}
	if out, err := login(); err == nil {
		t.Fatalf("a deleted user logged in: %s", out)
	}
}

// TestProcesslistAndKill: slardarctl mysql processlist shows a running statement with its user,
// command and text; kill --query stops the statement and the session goes on; kill ends it.
func TestProcesslistAndKill(t *testing.T) {
	d, addr := startProxy(t, proxyConfig(t, ""))
	ctl := buildCtl(t)
	a := "--addr=" + d.AdminAddr()
	db := openDB(t, addr, "")
	c := conn(t, db)
	var id int
	if err := c.QueryRowContext(context.Background(), "select connection_id()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var v int
		done <- c.QueryRowContext(context.Background(), "select sleep(30) /* long */").Scan(&v)
	}()
	var ps []struct {
		ID                  int
		User, Command, Info string
		Servers             []string
	}
	testutil.WaitFor(t, "the statement in the processlist", 10*time.Second, func() bool {
		out, err := exec.Command(ctl, a, "-o", "json", "mysql", "processlist").Output()
		if err != nil || json.Unmarshal(out, &ps) != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == id && p.Command == "Query" && strings.Contains(p.Info, "sleep(30)") && p.User == testserver.User && len(p.Servers) > 0 {
				return true
			}
		}
		return false
	})
	out, err := exec.Command(ctl, a, "mysql", "processlist").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "select sleep(30) /* long */") || !strings.Contains(string(out), "COMMAND") {
		t.Fatalf("processlist table: %v\n%s", err, out)
	}
	if out, err := exec.Command(ctl, a, "mysql", "kill", "--query", itoa(id)).CombinedOutput(); err != nil {
		t.Fatalf("kill --query: %v\n%s", err, out)
	}
	select {
	case <-done: // SLEEP returns 1 when killed, or the statement fails: either way it ended
	case <-time.After(20 * time.Second):
		t.Fatal("kill --query did not stop the statement")
	}
	if _, err := c.ExecContext(context.Background(), "select 1"); err != nil {
		t.Fatalf("the session after KILL QUERY: %v", err)
	}
	if out, err := exec.Command(ctl, a, "mysql", "kill", itoa(id)).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	if _, err := c.ExecContext(context.Background(), "select 1"); err == nil {
		t.Fatal("the session goes on after kill")
	}
	if out, err := exec.Command(ctl, a, "mysql", "kill", "4000000000").CombinedOutput(); err == nil || !strings.Contains(string(out), "session 4000000000 not found") {
		t.Fatalf("kill of no session: %v\n%s", err, out)
	}
}

// TestUsersFromTheStore: a user written with slardarctl store put user reaches mysql-proxy
// through store-sync and logs in; removed from the store, it is deleted.
func TestUsersFromTheStore(t *testing.T) {
	d, addr := startProxy(t, proxyConfig(t, "mysql: {learn_users: false}\n"))
	ctl := buildCtl(t)
	dir := t.TempDir()
	put := exec.Command(ctl, "store", "--store", "dir://"+dir, "put", "user", "app", "-f", "-")
	put.Stdin = strings.NewReader(`{"password":"app-secret","backend_user":"` + testserver.User + `","backend_password":"` + testserver.Password + `"}`)
	if out, err := put.CombinedOutput(); err != nil {
		t.Fatalf("store put user: %v\n%s", err, out)
	}
	sync := []syncer.Sync{{Store: &store.Dir{Root: dir}, Prefix: store.DefaultPrefix, Targets: []string{d.AdminAddr()}}}
	if res, err := syncer.Once(context.Background(), sync, false); err != nil || len(res) != 1 || len(res[0].Changes) != 1 {
		t.Fatalf("sync: %+v %v", res, err)
	}
	host, port, _ := strings.Cut(addr, ":")
	if out, err := runCLI("-h", host, "-P", port, "-u", "app", "-papp-secret", "-e", "select 1", testserver.Database); err != nil {
		t.Fatalf("login as the store's user: %s %v", out, err)
	}
	if res, err := syncer.Once(context.Background(), sync, true); err != nil || len(res[0].Changes) != 0 {
		t.Fatalf("in sync, yet a dry run plans %+v %v", res, err)
	}
	(&store.Dir{Root: dir}).Delete(context.Background(), store.DefaultPrefix+store.Users+"app")
	sync[0].Prune = true
	if res, err := syncer.Once(context.Background(), sync, false); err != nil || !strings.Contains(fmt.Sprint(res[0].Changes), "delete user app") {
		t.Fatalf("sync after the delete: %+v %v", res, err)
	}
	if out, err := runCLI("-h", host, "-P", port, "-u", "app", "-papp-secret", "-e", "select 1", testserver.Database); err == nil {
		t.Fatalf("a user deleted from the store logged in: %s", out)
	}
}
