package mysqlproxy

import (
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
)

// TestMetrics: mysql-proxy's own series exist from the start and move with statements.
func TestMetrics(t *testing.T) {
	cfg := proxyConfig(t, "")
	web := "127.0.0.1:0"
	cfg.HTTP.Listen = &web
	d, addr := startProxy(t, cfg)
	m := testutil.Scrape(t, d.HTTPAddr())
	for _, name := range []string{"slardar_mysql_queries_total", "slardar_mysql_sessions", "slardar_mysql_pool_connections_total",
		"slardar_mysql_consistency_reads_total", "slardar_mysql_pool_idle_connections", "slardar_server_up"} {
		if m[name] == nil {
			t.Errorf("%s missing at start", name)
		}
	}
	db := openDB(t, addr, "")
	c := conn(t, db)
	run(t, c, "create table if not exists metrics_t (id int primary key)")
	run(t, c, "select 1")
	if v, _ := testutil.Scrape(t, d.HTTPAddr()).Value("slardar_mysql_sessions", map[string]string{"upstream": "db"}); v != 1 {
		t.Errorf("open sessions: %v", v)
	}
	c.Close()
	db.Close() // the session ends
	testutil.WaitFor(t, "session counted", 5*time.Second, func() bool {
		m := testutil.Scrape(t, d.HTTPAddr())
		done, _ := m.Value("slardar_mysql_sessions_total", map[string]string{"upstream": "db"})
		reads, _ := m.Value("slardar_mysql_queries_total", map[string]string{"upstream": "db", "route": "read"})
		writes, _ := m.Value("slardar_mysql_queries_total", map[string]string{"upstream": "db", "route": "write"})
		opened, _ := m.Value("slardar_mysql_pool_connections_total", map[string]string{"event": "opened"})
		conns, _ := m.Value("slardar_connections_total", map[string]string{"upstream": "db", "outcome": "ok"})
		return done >= 1 && reads >= 1 && writes >= 1 && opened >= 1 && conns >= 1
	})
}
