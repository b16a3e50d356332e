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

// TestQueryRules: rules from the config file and from slardarctl change how statements run at
// once, against the real servers: force the primary, reject (a firewall), route to another
// upstream, rewrite, time out, mirror; a rule that does not compile is refused with its
// position and the rules in force stay; hits are counted; admin rules outlive a reload.
func TestQueryRules(t *testing.T) {
	extra := fmt.Sprintf(`  db_report: {servers: [{host: 127.0.0.1, port: %d}]}
  db_mirror: {servers: [{host: 127.0.0.1, port: %d}]}
http: {listen: "127.0.0.1:0"}
rules:
  - {name: to-primary, order: 10, match: {regexp: 'to-primary'}, destination: primary}
`, repl.Replica.Port, repl.Primary.Port)
	d, addr := startProxy(t, proxyConfig(t, extra))
	ctl := buildCtl(t)
	a := "--addr=" + d.AdminAddr()
	host, port, _ := strings.Cut(addr, ":")
	sql := func(q string) (string, error) {
		return runCLI("-h", host, "-P", port, "-u"+testserver.User, "-p"+testserver.Password, "--comments", "--skip-column-names", "-e", q, testserver.Database)
	}
	put := func(name, body string) (string, error) {
		c := exec.Command(ctl, a, "mysql", "rule", "put", name, "-f", "-")
		c.Stdin = strings.NewReader(body)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := sql("select @@server_id /* to-primary */"); err != nil || out != "1" {
		t.Fatalf("config rule to the primary: %q %v", out, err)
	}
	for name, body := range map[string]string{
		"firewall": "order: 1\nmatch: {user: runner, regexp: '(?i)^\\s*truncate\\b'}\nreject: {code: 1148, message: no TRUNCATE here}\n",
		"reports":  `{"order": 2, "match": {"regexp": "report"}, "upstream": "db_report"}`,
		"rewrite":  "order: 3\nmatch: {regexp: 'rewrite-me'}\nrewrite: {pattern: 'select 1', replacement: 'select 2'}\n",
		"slow":     "order: 4\nmatch: {regexp: 'sleep'}\ntimeout: 300ms\n",
		"mirror":   "order: 5\nmatch: {regexp: 'insert into mirror_t'}\nmirror: {upstream: db_mirror}\n",
		"forced":   "order: 6\nmatch: {regexp: '^insert into forced_t'}\ndestination: replica\n",
	} {
		if out, err := put(name, body); err != nil {
			t.Fatalf("rule put %s: %v\n%s", name, err, out)
		}
	}
	if out, err := sql("truncate table nothing"); err == nil || !strings.Contains(out, "ERROR 1148") || !strings.Contains(out, "no TRUNCATE here") {
		t.Fatalf("firewall: %q %v", out, err)
	}
	// A write-classified read sent to db_report (the replica's server) answers there.
	if out, err := sql("select @@server_id /* report */ for update"); err != nil || out != "2" {
		t.Fatalf("routed to db_report: %q %v", out, err)
	}
	if out, err := sql("select 1 /* rewrite-me */"); err != nil || out != "2" {
		t.Fatalf("rewrite: %q %v", out, err)
	}
	start := time.Now()
	if out, err := sql("select sleep(20)"); time.Since(start) > 10*time.Second {
		t.Fatalf("timeout: the statement ran %s (%q %v)", time.Since(start), out, err)
	}
	if out, err := sql("create table if not exists mirror_t (v int); delete from mirror_t; insert into mirror_t values (1)"); err != nil {
		t.Fatalf("mirror: %q %v", out, err)
	}
	testutil.WaitFor(t, "the mirrored insert", 10*time.Second, func() bool {
		out, err := sql("select count(*) from mirror_t /* to-primary */")
		return err == nil && out == "2"
	})
	// A write forced to a replica is refused there (read-only session) and runs on the primary.
	if out, err := sql("create table if not exists forced_t (v int); insert into forced_t values (7); select count(*) from forced_t where v = 7 /* to-primary */"); err != nil || out != "1" {
		t.Fatalf("a write forced to a replica: %q %v", out, err)
	}
	if v, _ := testutil.Scrape(t, d.HTTPAddr()).Value("slardar_mysql_replica_refusals_total", nil); v < 1 {
		t.Fatalf("the forced write was not refused by the replica: %v", v)
	}
	// A rule that does not compile: refused with its position, the others stay.
	if out, err := put("broken", "match:\n  regexp: '(unclosed'\n"); err == nil || !strings.Contains(out, "line 2 column 11: match.regexp") {
		t.Fatalf("a broken rule: %v\n%s", err, out)
	}
	bad := exec.Command("sh", "-c", fmt.Sprintf("printf 'PUT rule broken\\n\\000\\000\\000\\030{\"match\":{\"regexp\":\"(\"}}' | nc -q1 %s", strings.Replace(d.AdminAddr(), ":", " ", 1)))
	if out, _ := bad.CombinedOutput(); !strings.Contains(string(out), "missing closing )") {
		t.Fatalf("a broken rule over the raw protocol: %q", out)
	}
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ctl, a, "-o", "json", "mysql", "rule", "list").Output()
	var infos []struct {
		Name, Source string
		Hits         int64
	}
	if err != nil || json.Unmarshal(out, &infos) != nil || len(infos) != 7 {
		t.Fatalf("rule list after a reload: %v\n%s", err, out)
	}
	hits := map[string]int64{}
	for _, r := range infos {
		hits[r.Name] = r.Hits
	}
	if hits["firewall"] != 1 || hits["reports"] != 1 || hits["rewrite"] != 1 || hits["to-primary"] < 2 || infos[6].Source != "config" {
		t.Fatalf("hits: %v\n%s", hits, out)
	}
	if out, err := sql("truncate table nothing"); err == nil || !strings.Contains(out, "1148") {
		t.Fatalf("the firewall after a reload: %q %v", out, err)
	}
	if v, _ := testutil.Scrape(t, d.HTTPAddr()).Value("slardar_mysql_rule_hits_total", map[string]string{"rule": "firewall"}); v != 2 {
		t.Fatalf("rule hits metric: %v", v)
	}
	if out, err := exec.Command(ctl, a, "mysql", "rule", "delete", "firewall").CombinedOutput(); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	if out, err := sql("truncate table mirror_t"); err != nil {
		t.Fatalf("after the firewall's delete: %q %v", out, err)
	}
}

// TestRulesFromTheStore: a rule written with slardarctl store put rule reaches mysql-proxy
// through store-sync and acts; a store rule that does not compile is refused by slardarctl
// and, written around it, skipped by store-sync with its key.
func TestRulesFromTheStore(t *testing.T) {
	d, addr := startProxy(t, proxyConfig(t, ""))
	ctl := buildCtl(t)
	dir := t.TempDir()
	put := exec.Command(ctl, "store", "--store", "dir://"+dir, "put", "rule", "no-drop", "-f", "-")
	put.Stdin = strings.NewReader("match: {regexp: '(?i)^drop'}\nreject: {message: not through the proxy}\n")
	if out, err := put.CombinedOutput(); err != nil {
		t.Fatalf("store put rule: %v\n%s", err, out)
	}
	bad := exec.Command(ctl, "store", "--store", "dir://"+dir, "put", "rule", "bad", "-f", "-")
	bad.Stdin = strings.NewReader("match: {regexp: '('}\n")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "match.regexp") {
		t.Fatalf("store put of a broken rule: %v\n%s", err, out)
	}
	sync := []syncer.Sync{{Store: &store.Dir{Root: dir}, Prefix: store.DefaultPrefix, Targets: []string{d.AdminAddr()}}}
	if res, err := syncer.Once(context.Background(), sync, false); err != nil || !strings.Contains(fmt.Sprint(res[0].Changes), "put rule no-drop") {
		t.Fatalf("sync: %+v %v", res, err)
	}
	host, port, _ := strings.Cut(addr, ":")
	if out, err := runCLI("-h", host, "-P", port, "-u"+testserver.User, "-p"+testserver.Password, "-e", "drop table if exists nothing", testserver.Database); err == nil || !strings.Contains(out, "not through the proxy") {
		t.Fatalf("the store's rule: %q %v", out, err)
	}
	if res, err := syncer.Once(context.Background(), sync, true); err != nil || len(res[0].Changes) != 0 {
		t.Fatalf("in sync, yet a dry run plans %+v %v", res, err)
	}
}
