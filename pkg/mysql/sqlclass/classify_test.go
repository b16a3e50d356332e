package sqlclass

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		sql  string
		want Class
	}{
		{"select 1", Class{Verb: "SELECT", Read: true}},
		{"  SELECT @@hostname", Class{Verb: "SELECT", Read: true}},
		{"(select a from t) union (select b from u)", Class{Verb: "SELECT", Read: true}},
		{"/* a comment */ select 1 -- trailing\n", Class{Verb: "SELECT", Read: true}},
		{"# hash comment\nselect 1", Class{Verb: "SELECT", Read: true}},
		{"select '/*master*/', \"--\", `x;y` from t", Class{Verb: "SELECT", Read: true}},
		{"select 'it''s', 'a\\'b' from t", Class{Verb: "SELECT", Read: true}},
		{"show tables", Class{Verb: "SHOW", Read: true}},
		{"show create table t", Class{Verb: "SHOW", Read: true}},
		{"desc t", Class{Verb: "DESC", Read: true}},
		{"explain select * from t", Class{Verb: "EXPLAIN", Read: true}},
		{"with x as (select 1) select * from x", Class{Verb: "WITH", Read: true}},
		{"with x as (select 1) delete from t where id in (select * from x)", Class{Verb: "DELETE"}},
		{"/*master*/ select 1", Class{Verb: "SELECT", Hint: true}},
		{"select /*+ primary */ 1", Class{Verb: "SELECT", Hint: true}},
		{"select 1 /* MASTER */", Class{Verb: "SELECT", Hint: true}},
		{"select * from t for update", Class{Verb: "SELECT"}},
		{"select * from t for share", Class{Verb: "SELECT"}},
		{"select * from t lock in share mode", Class{Verb: "SELECT"}},
		{"select a into @x from t", Class{Verb: "SELECT"}},
		{"select a from t into outfile '/tmp/x'", Class{Verb: "SELECT"}},
		{"select @x := 1", Class{Verb: "SELECT", Pin: true}},
		{"select sql_calc_found_rows * from t limit 1", Class{Verb: "SELECT", Pin: true}},
		{"select found_rows()", Class{Verb: "SELECT", Last: true}},
		{"select row_count()", Class{Verb: "SELECT", Last: true}},
		{"select last_insert_id()", Class{Verb: "SELECT"}},
		{"select @@last_insert_id", Class{Verb: "SELECT"}},
		{"select @@session.warning_count", Class{Verb: "SELECT", Last: true}},
		{"show warnings", Class{Verb: "SHOW", Last: true}},
		{"show count(*) errors", Class{Verb: "SHOW", Last: true}},
		{"show master status", Class{Verb: "SHOW"}},
		{"select get_lock('x', 1)", Class{Verb: "SELECT", Pin: true}},
		{"select release_lock('x')", Class{Verb: "SELECT", Pin: true}},
		{"select nextval(s)", Class{Verb: "SELECT"}},
		{"select next value for s", Class{Verb: "SELECT"}},
		{"select master_gtid_wait('0-1-5', 1)", Class{Verb: "SELECT"}},
		{"select 1; select 2", Class{Verb: "SELECT", Multi: true}},
		{"select 1;", Class{Verb: "SELECT", Read: true}},
		{"select 1; -- just a comment", Class{Verb: "SELECT", Read: true}},
		{"insert into t values (1)", Class{Verb: "INSERT"}},
		{"update t set a = 1", Class{Verb: "UPDATE"}},
		{"set names utf8mb4", Class{Verb: "SET", Session: true}},
		{"SET @x = 1, sql_mode = ''", Class{Verb: "SET", Session: true}},
		{"set global max_connections = 10", Class{Verb: "SET"}},
		{"set password = password('x')", Class{Verb: "SET"}},
		{"use upyun", Class{Verb: "USE", Session: true}},
		{"lock tables t write", Class{Verb: "LOCK", Pin: true}},
		{"create temporary table x (a int)", Class{Verb: "CREATE", Pin: true}},
		{"prepare s from 'select 1'", Class{Verb: "PREPARE", Pin: true}},
		{"start transaction read only", Class{Verb: "START", ReadOnlyTx: true}},
		{"start transaction with consistent snapshot, read only", Class{Verb: "START", ReadOnlyTx: true}},
		{"start transaction read write", Class{Verb: "START"}},
		{"begin", Class{Verb: "BEGIN"}},
		{"/*!40101 select 1 */", Class{Verb: "SELECT", Read: true}},
		{"/*!40101 SET NAMES utf8 */", Class{Verb: "SET", Session: true}},
		{"call p()", Class{Verb: "CALL"}},
		{"", Class{}},
		{"frobnicate the widgets", Class{Verb: "FROBNICATE"}},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql); got != tt.want {
			t.Errorf("Classify(%q) = %+v; want %+v", tt.sql, got, tt.want)
		}
	}
}

// FuzzClassify: any text classifies without panicking, and a primary hint in front of it is
// never a read.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"select 1", "select 'a", "/*! select", "`x", "@'", "select @x := 1; update t", "/*master*/ select"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		c := Classify(sql)
		if c.Read && (c.Pin || c.Multi || c.Hint || c.Last) {
			t.Fatalf("%q: read and %+v", sql, c)
		}
		if h := Classify("/*master*/ " + sql); h.Read && !strings.Contains(sql, "*/") {
			t.Fatalf("%q with a primary hint is a read: %+v", sql, h)
		}
	})
}
