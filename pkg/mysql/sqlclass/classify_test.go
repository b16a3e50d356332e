package sqlclass

import (
	"reflect"
	"strings"
	"testing"
)

// known is the mode of a session whose sql_mode is known to be the server's default.
const known Mode = 0

func TestClassify(t *testing.T) {
	tests := []struct {
		sql  string
		mode Mode
		want Class
	}{
		{"select 1", known, Class{Verb: "SELECT", Read: true}},
		{"  SELECT @@hostname", known, Class{Verb: "SELECT", Read: true}},
		{"(select a from t) union (select b from u)", known, Class{Verb: "SELECT", Read: true}},
		{"/* a comment */ select 1 -- trailing\n", known, Class{Verb: "SELECT", Read: true}},
		{"# hash comment\nselect 1", known, Class{Verb: "SELECT", Read: true}},
		{"select '/*master*/', \"--\", `x;y` from t", known, Class{Verb: "SELECT", Read: true}},
		{"select 'it''s', 'a\\'b' from t", known, Class{Verb: "SELECT", Read: true}},
		{"show tables", known, Class{Verb: "SHOW", Read: true}},
		{"show create table t", known, Class{Verb: "SHOW", Read: true}},
		{"desc t", known, Class{Verb: "DESC", Read: true}},
		{"explain select * from t", known, Class{Verb: "EXPLAIN", Read: true}},
		{"explain analyze select * from t", known, Class{Verb: "EXPLAIN"}},
		{"analyze select * from t", known, Class{Verb: "ANALYZE"}},
		{"with x as (select 1) select * from x", known, Class{Verb: "WITH", Read: true}},
		{"with x (a, b) as (select 1, 2), y (c) as (select 3) select * from x, y", known, Class{Verb: "WITH", Read: true}},
		{"with recursive r (n) as (select 1 union select n + 1 from r where n < 3) select * from r", known, Class{Verb: "WITH", Read: true}},
		{"with x as (select 1) delete from t where id in (select * from x)", known, Class{Verb: "DELETE"}},
		{"/*master*/ select 1", known, Class{Verb: "SELECT", Hint: true, HintedRead: true}},
		{"select /*+ primary */ 1", known, Class{Verb: "SELECT", Hint: true, HintedRead: true}},
		{"select 1 /* MASTER */", known, Class{Verb: "SELECT", Hint: true, HintedRead: true}},
		{"select * from t for update", known, Class{Verb: "SELECT"}},
		{"select * from t for share", known, Class{Verb: "SELECT"}},
		{"select * from t lock in share mode", known, Class{Verb: "SELECT"}},
		{"select a into @x from t", known, Class{Verb: "SELECT", Pin: true}},
		{"select a, b into @x, @y from t", known, Class{Verb: "SELECT", Pin: true}},
		{"select a, @x, @y from t", known, Class{Verb: "SELECT", Read: true}},
		{"select a from t into outfile '/tmp/x'", known, Class{Verb: "SELECT"}},
		{"select @x := 1", known, Class{Verb: "SELECT", Pin: true}},
		{"select sql_calc_found_rows * from t limit 1", known, Class{Verb: "SELECT", Pin: true}},
		{"select found_rows()", known, Class{Verb: "SELECT", Last: true}},
		{"select row_count()", known, Class{Verb: "SELECT", Last: true}},
		{"select last_insert_id()", known, Class{Verb: "SELECT"}},
		{"select @@last_insert_id", known, Class{Verb: "SELECT"}},
		{"select @@session.warning_count", known, Class{Verb: "SELECT", Last: true}},
		{"show warnings", known, Class{Verb: "SHOW", Last: true}},
		{"show count(*) errors", known, Class{Verb: "SHOW", Last: true}},
		{"show master status", known, Class{Verb: "SHOW"}},
		{"select get_lock('x', 1)", known, Class{Verb: "SELECT", Pin: true}},
		{"select release_lock('x')", known, Class{Verb: "SELECT", Pin: true}},
		{"select nextval(s)", known, Class{Verb: "SELECT"}},
		{"select next value for s", known, Class{Verb: "SELECT"}},
		{"select master_gtid_wait('0-1-5', 1)", known, Class{Verb: "SELECT"}},
		{"select load_file('/etc/hostname')", known, Class{Verb: "SELECT"}},
		{"select 1; select 2", known, Class{Verb: "SELECT", Multi: true}},
		{"select 1;", known, Class{Verb: "SELECT", Read: true}},
		{"select 1; -- just a comment", known, Class{Verb: "SELECT", Read: true}},
		{"insert into t values (1)", known, Class{Verb: "INSERT"}},
		{"update t set a = 1", known, Class{Verb: "UPDATE"}},
		{"call p()", known, Class{Verb: "CALL"}},
		{"", known, Class{}},
		{"frobnicate the widgets", known, Class{Verb: "FROBNICATE"}},
		{"lock tables t write", known, Class{Verb: "LOCK", Pin: true}},
		{"create temporary table x (a int)", known, Class{Verb: "CREATE", Pin: true}},
		{"prepare s from 'select 1'", known, Class{Verb: "PREPARE", Pin: true}},
		{"start transaction read only", known, Class{Verb: "START", ReadOnlyTx: true}},
		{"start transaction with consistent snapshot, read only", known, Class{Verb: "START", ReadOnlyTx: true}},
		{"start transaction read write", known, Class{Verb: "START"}},
		{"start transaction read only; commit; insert into t values (1)", known, Class{Verb: "START", Multi: true}},
		{"begin", known, Class{Verb: "BEGIN"}},

		// Functions: built-ins are reads, others are named for the session to vouch for.
		{"select concat(a, lower(b)), count(*), json_extract(j, '$.a') from t group by (a)", known, Class{Verb: "SELECT", Read: true}},
		{"select f(1)", known, Class{Verb: "SELECT", Read: true, Funcs: []string{"f"}}},
		{"select upyun.f(1), `g` (2), `db`.`h`(3)", known, Class{Verb: "SELECT", Read: true, Funcs: []string{"upyun.f", "g", "db.h"}}},
		{"select db.concat('a')", known, Class{Verb: "SELECT", Read: true, Funcs: []string{"db.concat"}}},
		{"values (f(1))", known, Class{Verb: "VALUES", Read: true, Funcs: []string{"f"}}},
		{"with x as (select f(1)) select * from x", known, Class{Verb: "WITH", Read: true, Funcs: []string{"f"}}},
		{"select * from t where a in (1) and exists (select 1) and b = any (select 1)", known, Class{Verb: "SELECT", Read: true}},
		{"select cast(a as decimal(10,2)), convert(b, char(3)) from t force index (i) join u using (id)", known, Class{Verb: "SELECT", Read: true}},

		// Executable comments are code, MariaDB's too.
		{"/*!40101 select 1 */", known, Class{Verb: "SELECT", Read: true}},
		{"/*!40101 SET NAMES utf8 */", known, Class{Verb: "SET", Session: true}},
		{"select @@server_id /*M!100000 , f() */", known, Class{Verb: "SELECT", Read: true, Funcs: []string{"f"}}},
		{"select @@server_id /*M! , f() */", known, Class{Verb: "SELECT", Read: true, Funcs: []string{"f"}}},
		{"select 1 /*M! into outfile '/tmp/x' */", known, Class{Verb: "SELECT"}},
		{"select 1 /*!99999 ; insert into t values (1) */", known, Class{Verb: "SELECT", Multi: true}},

		// SET: what may be replayed, and what may not.
		{"set names utf8mb4", known, Class{Verb: "SET", Session: true}},
		{"set names latin1 collate latin1_bin", known, Class{Verb: "SET", Session: true, Set: []Assign{{"collation_connection", "latin1_bin"}}}},
		{"SET @x = 1, sql_mode = ''", known, Class{Verb: "SET", Session: true, Set: []Assign{{"@x", "1"}}}},
		{"set @a = 'abc', @b := -1.5, @c = null, @d = _utf8mb4'x' collate utf8mb4_bin, @e = x'ab'", known, Class{Verb: "SET", Session: true,
			Set: []Assign{{"@a", "'abc'"}, {"@b", "-1.5"}, {"@c", "null"}, {"@d", "_utf8mb4'x' collate utf8mb4_bin"}, {"@e", "x'ab'"}}}},
		{"set session time_zone = '+03:00', @@session.autocommit = 1, @@sql_mode = concat(@@sql_mode, ',ANSI')", known, Class{Verb: "SET", Session: true}},
		{"set session transaction isolation level read committed", known, Class{Verb: "SET", Session: true}},
		{"set @x = now()", known, Class{Verb: "SET"}},
		{"set @x = @y", known, Class{Verb: "SET"}},
		{"set @x = (select f())", known, Class{Verb: "SET"}},
		{"set sql_mode = f()", known, Class{Verb: "SET"}},
		{"set @a = 1; insert into t values (1)", known, Class{Verb: "SET", Multi: true}},
		{"set global max_connections = 10", known, Class{Verb: "SET"}},
		{"set @@global.max_connections = 10", known, Class{Verb: "SET"}},
		{"set password = password('x')", known, Class{Verb: "SET"}},
		{"set role r", known, Class{Verb: "SET"}},
		{"set default role r", known, Class{Verb: "SET"}},
		{"use upyun", known, Class{Verb: "USE", Session: true}},
		{"use `my db`", known, Class{Verb: "USE", Session: true}},
		{"select 1; use otherdb", known, Class{Verb: "SELECT", Multi: true}},

		// SET STATEMENT ... FOR: the statement decides, and only harmless variables keep a read.
		{"set statement max_statement_time=100 for insert into t values (1)", known, Class{Verb: "INSERT", SetStatement: true}},
		{"set statement max_statement_time=1, optimizer_switch='x=on' for select 1", known, Class{Verb: "SELECT", Read: true, SetStatement: true}},
		{"set statement tx_read_only=0 for select f()", known, Class{Verb: "SELECT", SetStatement: true}},
		{"set statement max_statement_time = (select f()) for select 1", known, Class{Verb: "SELECT", Read: true, SetStatement: true, Funcs: []string{"f"}}},

		// Quoting rules: a second statement hides in what another reading takes for a string.
		{`select '\'; insert into t values (1); -- '`, known, Class{Verb: "SELECT", Read: true}},
		{`select '\'; insert into t values (1); -- '`, NoBackslashEscapes, Class{Verb: "SELECT", Multi: true}},
		{`select '\'; insert into t values (1); -- '`, QuotingUnknown, Class{Verb: "SELECT", Multi: true}},
		{`select 1 as "\"; insert into t values (1); -- "`, known, Class{Verb: "SELECT", Read: true}},
		{`select 1 as "\"; insert into t values (1); -- "`, AnsiQuotes, Class{Verb: "SELECT", Multi: true}},
		{`select 1 as "\"; insert into t values (1); -- "`, QuotingUnknown, Class{Verb: "SELECT", Multi: true}},
		{`select "a" from t`, QuotingUnknown, Class{Verb: "SELECT", Read: true}},
		{`set @x = 'a\\b'`, known, Class{Verb: "SET", Session: true, Set: []Assign{{"@x", `'a\\b'`}}}},
		{`set @x = 'a\\b'`, QuotingUnknown, Class{Verb: "SET"}},
		{`set @x = "a"`, QuotingUnknown, Class{Verb: "SET"}},

		// A character set whose characters may end in 0x5C: the quote after 0xbf 0x5c ends the
		// string in GBK.
		{"select '\xbf\\'; insert into t values (1); -- '", ModeOf("", true, "gbk"), Class{Verb: "SELECT", Pin: true}},
		{"select '\xbf\\'; insert into t values (1); -- '", ModeOf("", true, "utf8mb4"), Class{Verb: "SELECT", Read: true}},
		{"select '中文' from t", ModeOf("", true, "gbk"), Class{Verb: "SELECT", Read: true}},
		{"select 1", ModeOf("ORACLE", true, "utf8mb4"), Class{Verb: "SELECT", Pin: true}},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql, tt.mode); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Classify(%q, %#x) = %+v; want %+v", tt.sql, tt.mode, got, tt.want)
		}
	}
}

func TestModeOf(t *testing.T) {
	tests := []struct {
		sqlMode string
		known   bool
		charset string
		want    Mode
	}{
		{"", false, "utf8mb4", QuotingUnknown},
		{"STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", true, "utf8mb4", 0},
		{"REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI", true, "latin1", AnsiQuotes},
		{"no_backslash_escapes", true, "utf8mb4", NoBackslashEscapes},
		{"PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ORACLE", true, "utf8mb4", AnsiQuotes | Unreadable},
		{"", true, "GBK", multiByte},
	}
	for _, tt := range tests {
		if got := ModeOf(tt.sqlMode, tt.known, tt.charset); got != tt.want {
			t.Errorf("ModeOf(%q, %v, %q) = %#x; want %#x", tt.sqlMode, tt.known, tt.charset, got, tt.want)
		}
	}
}

// FuzzClassify: any text classifies without panicking; a read is never also pinned, multiple,
// hinted or about the last statement; a primary hint in front of a text is never a read; and a
// text is a read under unknown quoting rules only if it is one under each of them.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"select 1", "select 'a", "/*! select", "`x", "@'", "select @x := 1; update t",
		"/*master*/ select", `select '\'; insert`, `select "\"; x`, "set @a = 1, b = 2", "with x (a) as (select f())"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		c := Classify(sql, known)
		if c.Read && (c.Pin || c.Multi || c.Hint || c.Last) {
			t.Fatalf("%q: read and %+v", sql, c)
		}
		if h := Classify("/*master*/ "+sql, known); h.Read && !strings.Contains(sql, "*/") {
			t.Fatalf("%q with a primary hint is a read: %+v", sql, h)
		}
		if u := Classify(sql, QuotingUnknown); u.Read {
			for _, m := range []Mode{0, AnsiQuotes, NoBackslashEscapes, AnsiQuotes | NoBackslashEscapes} {
				if !Classify(sql, m).Read {
					t.Fatalf("%q: a read under unknown quoting but not under %#x", sql, m)
				}
			}
		}
	})
}

func TestReplaceConnectionID(t *testing.T) {
	tests := []struct {
		sql, want string
		mode      Mode
	}{
		{"SELECT CONNECTION_ID()", "SELECT 42", known},
		{"select connection_id ( ), 'CONNECTION_ID()', `connection_id`() /* CONNECTION_ID() */", "select 42, 'CONNECTION_ID()', `connection_id`() /* CONNECTION_ID() */", known},
		{"KILL QUERY CONNECTION_ID()", "KILL QUERY 42", known},
		{"SELECT db.CONNECTION_ID()", "SELECT db.CONNECTION_ID()", known},
		{`SELECT '\'', CONNECTION_ID()`, `SELECT '\'', CONNECTION_ID()`, QuotingUnknown}, // the readings disagree
		{`SELECT '\'', CONNECTION_ID()`, `SELECT '\'', 42`, known},
		{"SELECT 1", "SELECT 1", known},
	}
	for _, tt := range tests {
		if got, _ := ReplaceConnectionID(tt.sql, tt.mode, 42); got != tt.want {
			t.Errorf("ReplaceConnectionID(%q) = %q; want %q", tt.sql, got, tt.want)
		}
	}
}

func TestParseKill(t *testing.T) {
	tests := []struct {
		sql  string
		want Kill
		ok   bool
	}{
		{"KILL 7", Kill{ID: 7}, true},
		{"kill connection 7", Kill{ID: 7}, true},
		{"KILL HARD QUERY 12;", Kill{Query: true, ID: 12}, true},
		{"KILL QUERY ID 99", Kill{Query: true, QueryID: true, ID: 99}, true},
		{"KILL USER bob", Kill{User: "bob"}, true},
		{"KILL QUERY USER 'bob'", Kill{Query: true, User: "bob"}, true},
		{"KILL USER 'bob'@'%'", Kill{User: "bob", Host: "%"}, true},
		{"KILL CONNECTION USER bob@localhost", Kill{User: "bob", Host: "localhost"}, true},
		{"KILL USER `bob`@`10.0.%`", Kill{User: "bob", Host: "10.0.%"}, true},
		{"KILL USER bob @ 'h''x'", Kill{User: "bob", Host: "h'x"}, true},
		{"KILL USER bob@@version", Kill{}, false},
		{"KILL 7; SELECT 1", Kill{}, false},
		{"SELECT 1", Kill{}, false},
		{"KILL @x", Kill{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseKill(tt.sql, known)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("ParseKill(%q) = %+v, %v; want %+v, %v", tt.sql, got, ok, tt.want, tt.ok)
		}
	}
}
