// Package digest keeps mysql-proxy's query digests (ProxySQL's stats_mysql_query_digest, the
// profile of pt-query-digest): per statement digest (sqlclass.Digest) and per user, schema and
// upstream, how often it ran, how long it took, how many rows it sent or changed, how often it
// failed and where it ran. Memory is bounded: at most Max rows; statements beyond them are
// counted in one row whose digest is "other".
package digest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// DefaultMax is how many digests are kept when the configuration says nothing.
const DefaultMax = 5000

// Other is the digest text of the row that counts what did not fit.
const Other = "other"

// Where a statement ran.
type Where int

const (
	Primary  Where = iota // the primary (a write, or a read it had to serve)
	Replica               // a replica
	Fallback              // a read a replica should have served, on the primary (none usable)
	Nowhere               // no server (the proxy answered with an error)
)

// Key is what a row is kept by.
type Key struct {
	ID       uint64
	User     string
	Schema   string
	Upstream string
}

// Sample is one statement that ran.
type Sample struct {
	Key
	Text     string // the digest's text (sqlclass.Digest)
	Took     time.Duration
	Rows     uint64 // rows sent
	Affected uint64 // rows changed
	Err      bool   // it ended with an error
	Where    Where
}

// buckets are the latency histogram's: bucket i counts durations below 2^(i/2) µs (a factor of
// √2 apart), the last everything longer, ~1 µs to ~12 days.
const buckets = 82

func bucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Ceil(2*math.Log2(us))), buckets-1)
}

func bucketBound(i int) time.Duration {
	return time.Duration(math.Pow(2, float64(i)/2) * float64(time.Microsecond))
}

// row is one digest's counters.
type row struct {
	text                       string
	count, errors              uint64
	rows, affected             uint64
	total, minTook, maxTook    time.Duration
	first, last                time.Time
	primary, replica, fallback uint64
	hist                       [buckets]uint32
}

func (r *row) add(s Sample, now time.Time) {
	if r.count == 0 || s.Took < r.minTook {
		r.minTook = s.Took
	}
	if r.count == 0 {
		r.first = now
	}
	r.count++
	r.last = now
	r.total += s.Took
	r.maxTook = max(r.maxTook, s.Took)
	r.rows += s.Rows
	r.affected += s.Affected
	if s.Err {
		r.errors++
	}
	switch s.Where {
	case Primary:
		r.primary++
	case Replica:
		r.replica++
	case Fallback:
		r.fallback++
	}
	if b := &r.hist[bucket(s.Took)]; *b < math.MaxUint32 {
		*b++
	}
}

// quantile is the upper bound of the bucket holding the q-th quantile, at most the maximum.
func (r *row) quantile(q float64) time.Duration {
	want := uint64(math.Ceil(q * float64(r.count)))
	var seen uint64
	for i, n := range r.hist {
		seen += uint64(n)
		if seen >= want {
			return min(bucketBound(i), r.maxTook)
		}
	}
	return r.maxTook
}

// Store is the digests of one mysql-proxy. The zero value keeps DefaultMax rows; it is safe for
// concurrent use.
type Store struct {
	mu    sync.Mutex
	max   int
	rows  map[Key]*row
	other map[Key]*row // by user, schema and upstream (ID 0): what did not fit
	now   func() time.Time
}

// SetMax bounds the rows kept (0: DefaultMax); rows over a lower bound are kept until Reset.
func (s *Store) SetMax(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = n
}

// Record counts one statement.
func (s *Store) Record(smp Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.now != nil {
		now = s.now()
	}
	if s.rows == nil {
		s.rows, s.other = make(map[Key]*row), make(map[Key]*row)
	}
	r := s.rows[smp.Key]
	if r == nil {
		if len(s.rows) >= cmp.Or(s.max, DefaultMax) {
			k := Key{User: smp.User, Schema: smp.Schema, Upstream: smp.Upstream}
			if r = s.other[k]; r == nil {
				r = &row{text: Other}
				s.other[k] = r
			}
			r.add(smp, now)
			return
		}
		r = &row{text: smp.Text}
		s.rows[smp.Key] = r
	}
	r.add(smp, now)
}

// Reset forgets every row.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows, s.other = nil, nil
}

// Len is how many digest rows are kept (not counting "other").
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rows)
}

// Row is a digest row as GET mysql digest shows it. Times are in seconds.
type Row struct {
	Digest       string  `json:"digest"` // the id, 16 hex digits ("" for the other row)
	Text         string  `json:"digest_text"`
	User         string  `json:"user"`
	Schema       string  `json:"schema"`
	Upstream     string  `json:"upstream"`
	Count        uint64  `json:"count"`
	Errors       uint64  `json:"errors"`
	RowsSent     uint64  `json:"rows_sent"`
	RowsAffected uint64  `json:"rows_affected"`
	Total        float64 `json:"total_seconds"`
	Min          float64 `json:"min_seconds"`
	Max          float64 `json:"max_seconds"`
	P99          float64 `json:"p99_seconds"`
	FirstSeen    string  `json:"first_seen"`
	LastSeen     string  `json:"last_seen"`
	Primary      uint64  `json:"primary"`
	Replica      uint64  `json:"replica"`
	Fallback     uint64  `json:"fallback"`
}

// Sorts of Rows.
const (
	SortTotal  = "total"
	SortCount  = "count"
	SortP99    = "p99"
	SortErrors = "errors"
)

// Sorts are the orders Rows takes.
var Sorts = []string{SortTotal, SortCount, SortP99, SortErrors}

// Rows are the rows, largest first by sort (total time when ""), at most top of them (0: all);
// the "other" rows are among them as any other.
func (s *Store) Rows(sort string, top int) ([]Row, error) {
	var key func(Row) float64
	switch sort {
	case "", SortTotal:
		key = func(r Row) float64 { return r.Total }
	case SortCount:
		key = func(r Row) float64 { return float64(r.Count) }
	case SortP99:
		key = func(r Row) float64 { return r.P99 }
	case SortErrors:
		key = func(r Row) float64 { return float64(r.Errors) }
	default:
		return nil, fmt.Errorf("sort %q: want total, count, p99 or errors", sort)
	}
	s.mu.Lock()
	out := make([]Row, 0, len(s.rows)+len(s.other))
	for k, r := range s.rows {
		out = append(out, r.public(k, fmt.Sprintf("%016x", k.ID)))
	}
	for k, r := range s.other {
		out = append(out, r.public(k, ""))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(cmp.Compare(key(b), key(a)), cmp.Compare(a.Digest, b.Digest), cmp.Compare(a.User, b.User),
			cmp.Compare(a.Schema, b.Schema), cmp.Compare(a.Upstream, b.Upstream))
	})
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	return out, nil
}

const timeLayout = "2006-01-02 15:04:05"

func (r *row) public(k Key, id string) Row {
	return Row{Digest: id, Text: r.text, User: k.User, Schema: k.Schema, Upstream: k.Upstream, Count: r.count, Errors: r.errors,
		RowsSent: r.rows, RowsAffected: r.affected, Total: r.total.Seconds(), Min: r.minTook.Seconds(), Max: r.maxTook.Seconds(),
		P99: r.quantile(0.99).Seconds(), FirstSeen: r.first.Format(timeLayout), LastSeen: r.last.Format(timeLayout),
		Primary: r.primary, Replica: r.replica, Fallback: r.fallback}
}
