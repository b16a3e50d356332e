package mysqlproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/slardar-go/slardar/internal/testutil"
)

// TestDigests: statements through mysql-proxy, as text and prepared, with every literal
// changing, land in one digest each with their counts, rows and where they ran; slardarctl
// shows them, /metrics has the top ones, reset forgets them, and beyond mysql.digests.max the
// rest is one "other" row.
func TestDigests(t *testing.T) {
	d, addr := startProxy(t, proxyConfig(t, "mysql: {digests: {max: 6, top: 10}}\nhttp: {listen: \"127.0.0.1:0\"}\n"))
	ctl := buildCtl(t)
	a := "--addr=" + d.AdminAddr()
	db := conn(t, openDB(t, addr, ""))
	ctx := context.Background()
	run(t, db, "create table if not exists digest_t (id int primary key, v int)")
	run(t, db, "delete from digest_t")
	for i := range 5 {
		run(t, db, fmt.Sprintf("insert into digest_t (id, v) values (%d, %d), (%d, 0)", 2*i, i, 2*i+1))
		if _, err := db.ExecContext(ctx, "update digest_t set v = v + ? where id = ?", 1, i); err != nil { // prepared
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, fmt.Sprintf("/* req %d */ SELECT count(*) FROM digest_t WHERE id IN (%s)", i, strings.Repeat("1,", i)+"2")).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		Digest                     string
		Text                       string `json:"digest_text"`
		User, Schema, Upstream     string
		Count, Errors              uint64
		RowsSent                   uint64 `json:"rows_sent"`
		RowsAffected               uint64 `json:"rows_affected"`
		Primary, Replica, Fallback uint64
	}
	digests := func() map[string]row {
		out, err := exec.Command(ctl, a, "-o", "json", "mysql", "digest", "--top", "0").Output()
		var rows []row
		if err != nil || json.Unmarshal(out, &rows) != nil {
			t.Fatalf("mysql digest: %v\n%s", err, out)
		}
		m := map[string]row{}
		for _, r := range rows {
			m[r.Text] = r
		}
		return m
	}
	m := digests()
	ins := m["insert into digest_t (id, v) values (...)"]
	upd := m["update digest_t set v = v + ? where id = ?"]
	sel := m["select count(*) from digest_t where id in (...)"]
	if ins.Count != 5 || ins.RowsAffected != 10 || ins.Primary != 5 || ins.User != "runner" || ins.Upstream != "db" {
		t.Errorf("insert digest: %+v", ins)
	}
	if upd.Count != 5 || upd.RowsAffected != 5 {
		t.Errorf("prepared update digest: %+v", upd)
	}
	if sel.Count != 5 || sel.RowsSent != 5 || sel.Replica+sel.Fallback != 5 {
		t.Errorf("select digest: %+v", sel)
	}
	out, err := exec.Command(ctl, a, "mysql", "digest").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "select count(*) from digest_t where id in (...)") || !strings.Contains(string(out), "RANK") {
		t.Fatalf("digest table: %v\n%s", err, out)
	}
	metrics := testutil.Scrape(t, d.HTTPAddr())
	if v, ok := metrics.Value("slardar_mysql_digest_calls_total", map[string]string{"query": "insert into digest_t (id, v) values (...)"}); !ok || v != 5 {
		t.Errorf("metrics of the insert digest: %v %v", v, ok)
	}
	// Beyond max (6 rows here), every new digest is counted in "other".
	for i := range 10 {
		run(t, db, fmt.Sprintf("select %d as col%d", i, i))
	}
	if m := digests(); len(m) != 7 || m["other"].Count == 0 {
		t.Fatalf("%d rows (want 6 and other): %v", len(m), m)
	}
	if out, err := exec.Command(ctl, a, "mysql", "digest", "reset").CombinedOutput(); err != nil {
		t.Fatalf("reset: %v\n%s", err, out)
	}
	if m := digests(); len(m) != 0 {
		t.Fatalf("after reset: %v", m)
	}
	if out, err := exec.Command(ctl, a, "mysql", "digest", "--sort", "slowest").CombinedOutput(); err == nil || !strings.Contains(string(out), "want total, count, p99 or errors") {
		t.Fatalf("bad sort: %v %s", err, out)
	}
}
