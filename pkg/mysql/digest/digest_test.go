package digest

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
)

// TestBoundedMemory: 100 000 distinct statements keep at most Max rows, the rest counted in
// "other"; the heap after them is what it was after the first Max (the map does not grow).
func TestBoundedMemory(t *testing.T) {
	var s Store
	s.SetMax(5000)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	record := func(from, to int) {
		for i := from; i < to; i++ {
			text, id := sqlclass.Digest(fmt.Sprintf("SELECT c AS alias%d FROM sbtest1 WHERE id = %d", i, i), 0)
			s.Record(Sample{Key: Key{ID: id, User: "app", Schema: "db", Upstream: "db"}, Text: text, Took: time.Millisecond, Rows: 1, Where: Replica})
		}
	}
	record(0, 5000)
	full := heap()
	record(5000, 100_000)
	after := heap()
	if s.Len() != 5000 {
		t.Fatalf("%d rows kept; want 5000", s.Len())
	}
	rows, _ := s.Rows(SortCount, 1)
	if rows[0].Text != Other || rows[0].Count != 95_000 || rows[0].RowsSent != 95_000 || rows[0].Replica != 95_000 {
		t.Fatalf("the other row: %+v", rows[0])
	}
	if after > full+full/10 {
		t.Fatalf("heap grew from %d to %d bytes over 95 000 statements beyond the bound", full, after)
	}
	t.Logf("heap with 5000 digests: %d KiB; after 100 000 statements: %d KiB", full/1024, after/1024)
}

func TestRowsAndQuantiles(t *testing.T) {
	var s Store
	k := Key{ID: 1, User: "u", Schema: "s", Upstream: "db"}
	for i := range 100 {
		s.Record(Sample{Key: k, Text: "select ?", Took: time.Duration(i+1) * time.Millisecond, Rows: 2, Where: Primary})
	}
	s.Record(Sample{Key: Key{ID: 2, User: "u", Schema: "s", Upstream: "db"}, Text: "update t set a = ?", Took: time.Second, Affected: 3, Err: true, Where: Primary})
	rows, err := s.Rows(SortTotal, 0)
	if err != nil || len(rows) != 2 {
		t.Fatal(rows, err)
	}
	r := rows[0]
	if r.Digest != "0000000000000001" || r.Count != 100 || r.RowsSent != 200 || r.Min != 0.001 || r.Max != 0.1 || r.Primary != 100 {
		t.Fatalf("row: %+v", r)
	}
	if r.P99 < 0.099 || r.P99 > 0.1 { // the bucket of 99 ms, at most the maximum
		t.Fatalf("p99 %v; want about 0.099", r.P99)
	}
	if rows, _ := s.Rows(SortErrors, 1); rows[0].Digest != "0000000000000002" || rows[0].Errors != 1 || rows[0].RowsAffected != 3 {
		t.Fatalf("by errors: %+v", rows)
	}
	if _, err := s.Rows("slowest", 0); err == nil {
		t.Fatal("an unknown sort was taken")
	}
	s.Reset()
	if rows, _ := s.Rows("", 0); len(rows) != 0 {
		t.Fatalf("after Reset: %v", rows)
	}
}

func BenchmarkRecord(b *testing.B) {
	var s Store
	text, id := sqlclass.Digest("SELECT c FROM sbtest1 WHERE id=5012", 0)
	for b.Loop() {
		s.Record(Sample{Key: Key{ID: id, User: "sbtest", Schema: "sbtest", Upstream: "db"}, Text: text, Took: 80 * time.Microsecond, Rows: 1, Where: Replica})
	}
}

func BenchmarkDigest(b *testing.B) {
	for b.Loop() {
		sqlclass.Digest("SELECT c FROM sbtest1 WHERE id=5012", 0)
	}
}
