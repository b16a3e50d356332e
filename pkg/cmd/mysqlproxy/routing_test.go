package mysqlproxy

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/sqlcorpus"
	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// rootQuery returns the first column of a query's first row, run as root on m.
func rootQuery(t *testing.T, m *testserver.MariaDB, q string) string {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN("root"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v sql.NullString
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s on %s: %v", q, m.Addr(), err)
	}
	return v.String
}

// corpusTables makes the corpus's table and functions on the primary (replicated) once.
func corpusTables(t *testing.T) {
	t.Helper()
	db := testserver.Database
	root(t, repl.Primary,
		"SET GLOBAL log_bin_trust_function_creators = 1", // functions that write, with a binary log
		"CREATE TABLE IF NOT EXISTS "+db+"."+sqlcorpus.Table+" (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))",
		"CREATE OR REPLACE FUNCTION "+db+"."+sqlcorpus.FWrite+"(v VARCHAR(64)) RETURNS INT MODIFIES SQL DATA "+
			"BEGIN INSERT INTO "+db+"."+sqlcorpus.Table+" (v) VALUES (v); RETURN 1; END",
		"CREATE OR REPLACE FUNCTION "+db+"."+sqlcorpus.FReads+"() RETURNS INT READS SQL DATA "+
			"RETURN (SELECT COUNT(*) FROM "+db+"."+sqlcorpus.Table+")",
		"CREATE OR REPLACE FUNCTION "+db+"."+sqlcorpus.FLies+"(v VARCHAR(64)) RETURNS INT READS SQL DATA "+
			"BEGIN INSERT INTO "+db+"."+sqlcorpus.Table+" (v) VALUES (v); RETURN 1; END",
	)
	syncReplica(t)
}

// replicaWritable checks the premise of the corpus: the test user's ALL ON *.* includes READ_ONLY
// ADMIN, so read_only on the replica stops nothing it runs there; only the proxy can.
func replicaWritable(t *testing.T) {
	t.Helper()
	db := openDB(t, repl.Replica.Addr(), "")
	probe := fmt.Sprintf("%s.ro_probe_%d", testserver.Database, time.Now().UnixNano())
	if _, err := db.Exec("CREATE TABLE " + probe + " (a INT)"); err != nil {
		t.Fatalf("the test user cannot write on the replica (%v): the corpus would prove nothing", err)
	}
	db.Exec("DROP TABLE " + probe)
}

// diverged says how the replica differs from the primary after it caught up ("" if not).
func diverged(t *testing.T) string {
	t.Helper()
	syncReplica(t)
	q := "CHECKSUM TABLE " + testserver.Database + "." + sqlcorpus.Table
	sum := func(m *testserver.MariaDB) string {
		db, err := sql.Open("mysql", m.DSN("root"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var name, v string
		if err := db.QueryRow(q).Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if p, r := sum(repl.Primary), sum(repl.Replica); p != r {
		return fmt.Sprintf("checksums differ: primary %s, replica %s", p, r)
	}
	db, err := sql.Open("mysql", repl.Replica.DSN("root"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SHOW SLAVE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if !rows.Next() {
		return "the replica is not replicating"
	}
	rows.Scan(ptrs...)
	for i, c := range cols {
		if (c == "Slave_SQL_Running" && vals[i].String != "Yes") || (c == "Last_SQL_Errno" && vals[i].String != "0") {
			return fmt.Sprintf("replication broke: %s = %s", c, vals[i].String)
		}
	}
	return ""
}

// TestRoutingCorpus runs every statement of the corpus through the split listener as a user who
// may write on the replica: each runs where the corpus says, exactly once, state it made is
// seen where the session goes next, and the replica never diverges from the primary.
func TestRoutingCorpus(t *testing.T) {
	corpusTables(t)
	replicaWritable(t)
	d, addr := startProxy(t, proxyConfig(t, ""))
	testutil.WaitFor(t, "the replica's stored functions learned", 10*time.Second, func() bool {
		return d.Reg.RoutineAccess("db_read", "upyun."+sqlcorpus.FLies) == "READS SQL DATA"
	})
	db := openDB(t, addr, "multiStatements=true")
	db.SetMaxIdleConns(0) // every case a session of its own
	counters := d.counters.get("db")
	count := func() int {
		var n int
		fmt.Sscan(rootQuery(t, repl.Primary, "SELECT COUNT(*) FROM "+testserver.Database+"."+sqlcorpus.Table), &n)
		return n
	}
	ctx := context.Background()
	for _, tc := range sqlcorpus.Routing {
		t.Run(tc.Name, func(t *testing.T) {
			c := conn(t, db)
			for _, s := range tc.Setup {
				run(t, c, s)
			}
			rows := count()
			reads, refusals := counters.Reads.Load(), counters.ReplicaRefusals.Load()
			_, err := c.ExecContext(ctx, tc.SQL)
			where := sqlcorpus.Primary
			if counters.Reads.Load() > reads {
				where = sqlcorpus.Replica
			}
			if where != tc.Where {
				t.Errorf("ran on the %s (err %v); want the %s", where, err, tc.Where)
			}
			if got := counters.ReplicaRefusals.Load() - refusals; tc.Lies != (got == 1) {
				t.Errorf("the replica refused it %d times (err %v); the corpus says it lies: %v", got, err, tc.Lies)
			}
			if tc.Then != "" {
				if got := str(t, c, tc.Then); got != tc.Want {
					t.Errorf("%s: %q; want %q", tc.Then, got, tc.Want)
				}
			}
			str(t, c, "SELECT 1") // a read: the replica connection gets what the session recorded
			c.Close()
			if why := diverged(t); why != "" {
				t.Fatalf("after %q the replica diverged: %s", tc.SQL, why)
			}
			if got := count() - rows; got != tc.Rows {
				t.Errorf("added %d rows on the primary; want %d", got, tc.Rows)
			}
		})
	}
}
