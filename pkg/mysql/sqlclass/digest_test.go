package sqlclass

import (
	"fmt"
	"testing"
	"unicode/utf8"
)

func TestDigest(t *testing.T) {
	for _, tt := range []struct{ sql, want string }{
		// sysbench's statements
		{"SELECT c FROM sbtest1 WHERE id=5012", "select c from sbtest1 where id = ?"},
		{"SELECT c FROM sbtest3 WHERE id BETWEEN 4990 AND 5089", "select c from sbtest3 where id between ? and ?"},
		{"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 100", "select sum(k) from sbtest1 where id between ? and ?"},
		{"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 100 ORDER BY c", "select distinct c from sbtest1 where id between ? and ? order by c"},
		{"UPDATE sbtest1 SET k=k+1 WHERE id=17", "update sbtest1 set k = k + ? where id = ?"},
		{"UPDATE sbtest1 SET c='12-34' WHERE id=17", "update sbtest1 set c = ? where id = ?"},
		{"DELETE FROM sbtest1 WHERE id=99", "delete from sbtest1 where id = ?"},
		{"INSERT INTO sbtest1 (id, k, c, pad) VALUES (99, 5001, '1-2', '3-4')", "insert into sbtest1 (id, k, c, pad) values (...)"},
		// an ORM's: backquotes, IN lists, multi-row inserts, placeholders, LIMIT
		{"SELECT `users`.* FROM `users` WHERE `users`.`id` IN (1, 2, 3) LIMIT 10", "select `users`.* from `users` where `users`.`id` in (...) limit ?"},
		{"SELECT `users`.* FROM `users` WHERE `users`.`id` IN (7) LIMIT 1", "select `users`.* from `users` where `users`.`id` in (...) limit ?"},
		{"select * from users where id in (?, ?)", "select * from users where id in (...)"},
		{"INSERT INTO t (a,b) VALUES (1,'x'),(2,'y'),(3,NULL)", "insert into t (a, b) values (...)"},
		{"INSERT INTO t (a,b) VALUES (1,'x')", "insert into t (a, b) values (...)"},
		{"INSERT INTO t (a,b) VALUES (1,NOW()),(2,NOW())", "insert into t (a, b) values (?, now()), (?, now())"},
		{"INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a=VALUES(a)", "insert into t (a) values (...) on duplicate key update a = values (a)"},
		// comments, whitespace, case, signs, literals of every kind
		{"/* app:42 */ select  *\n\tFROM t -- trailing\n WHERE a = -1;", "select * from t where a = ?"},
		{"SELECT * FROM t WHERE a = 1 # comment", "select * from t where a = ?"},
		{"select a-1, b - 2, x'0F', _utf8mb4'é', N'n', 0x1F, 1.5e3, b'101' from t", "select a - ?, b - ?, ?, ?, ?, ?, ?, ? from t"},
		{"SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1", "select ?"},
		{"select * from t where id in (select id from u where k = 3)", "select * from t where id in (select id from u where k = ?)"},
		{"select @a := 5, @@session.sql_mode", "select @a := ?, @@session.sql_mode"},
	} {
		got, _ := Digest(tt.sql, 0)
		if got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.sql, got, tt.want)
		}
	}
	a, ida := Digest("SELECT c FROM sbtest1 WHERE id=1", 0)
	b, idb := Digest("select c\nfrom sbtest1 where id = 2 /* x */", 0)
	if a != b || ida != idb || fmt.Sprintf("%016x", ida) != "a1f3b08f1e56ad84" && ida == 0 {
		t.Fatalf("same digest, different ids: %q %x %q %x", a, ida, b, idb)
	}
	if _, id := Digest("select c from sbtest1 where id = ?", 0); id != ida {
		t.Fatalf("a prepared statement's text has another id than the text one's")
	}
}

// FuzzDigest: any text has a digest no longer than DigestMax, and the digest is a fixed point
// (a digest's own digest is itself, so ids are stable however a statement is written).
func FuzzDigest(f *testing.F) {
	f.Add("SELECT c FROM sbtest1 WHERE id IN (1,2,3)")
	f.Add("insert into t values (1,'a'),(2,'b')")
	f.Add("select x'0F', -1, a-1 from t /* c */ where b = 'it''s'")
	f.Fuzz(func(t *testing.T, sql string) {
		text, _ := Digest(sql, 0)
		if len(text) > DigestMax {
			t.Fatalf("digest of %d bytes", len(text))
		}
		if again, _ := Digest(text, 0); again != text && len(text) < DigestMax-16 && utf8.ValidString(sql) {
			t.Fatalf("%q: digest %q, its digest %q", sql, text, again)
		}
	})
}
