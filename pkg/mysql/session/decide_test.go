package session

import (
	"testing"
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
)

// TestDecide: where a statement runs, from its text and the session's state, with no server.
func TestDecide(t *testing.T) {
	vouchNone := func(funcs []string) bool { return len(funcs) == 0 } // no stored function is vouched for
	vouchAll := func([]string) bool { return true }
	idle := facts{}
	for _, c := range []struct {
		name     string
		sql      string
		vouched  func([]string) bool
		state    facts
		want     where
		windowed bool
	}{
		{"a plain read", "SELECT * FROM t WHERE id = 1", vouchNone, idle, whereReplica, false},
		{"a write", "UPDATE t SET a = 1", vouchNone, idle, wherePrimary, false},
		{"a read calling a stored function nobody vouched for", "SELECT f(1)", vouchNone, idle, wherePrimary, false},
		{"a read calling a function the catalog says reads only", "SELECT f(1)", vouchAll, idle, whereReplica, false},
		{"a read in a transaction", "SELECT 1", vouchNone, facts{inTx: true}, whereTx, false},
		{"a write in a transaction", "INSERT INTO t VALUES (1)", vouchNone, facts{inTx: true}, whereTx, false},
		{"a read of a pinned session", "SELECT * FROM tmp", vouchNone, facts{pinned: true}, wherePrimary, false},
		{"a read with autocommit off", "SELECT 1", vouchNone, facts{autocommitOff: true}, wherePrimary, false},
		{"a read within the window after a write", "SELECT 1", vouchNone, facts{inWindow: true}, wherePrimary, true},
		{"a pinned read within the window", "SELECT 1", vouchNone, facts{pinned: true, inWindow: true}, wherePrimary, false},
		{"a primary hint", "/*master*/ SELECT 1", vouchNone, idle, wherePrimary, false},
		{"SHOW WARNINGS after a statement", "SHOW WARNINGS", vouchNone, facts{hasLast: true}, whereLast, false},
		{"SHOW WARNINGS first", "SHOW WARNINGS", vouchNone, idle, wherePrimary, false},
		{"SELECT FOUND_ROWS() after a statement", "SELECT FOUND_ROWS()", vouchNone, facts{hasLast: true}, whereLast, false},
		{"a read in a read-only transaction's start", "START TRANSACTION READ ONLY", vouchNone, idle, whereReplica, false},
		{"SELECT ... FOR UPDATE", "SELECT * FROM t FOR UPDATE", vouchNone, idle, wherePrimary, false},
		{"an executable comment that writes", "SELECT 1 /*!50000 , (SELECT 1 FROM t FOR UPDATE) */", vouchNone, idle, wherePrimary, false},
	} {
		class := sqlclass.Classify(c.sql, 0)
		f := c.state
		f.route = routeFor(class, c.vouched)
		got, windowed := decide(f)
		if got != c.want || windowed != c.windowed {
			t.Errorf("%s (%q, route %d, %+v): %s windowed %v, want %s windowed %v", c.name, c.sql, f.route, c.state, got, windowed, c.want, c.windowed)
		}
	}
}

// TestDecideHeld: a command that may run anywhere (routeAny) stays on a held connection, the
// primary's first.
func TestDecideHeld(t *testing.T) {
	for _, c := range []struct {
		f    facts
		want where
	}{
		{facts{route: routeAny}, whereReplica},
		{facts{route: routeAny, holdsReplica: true}, whereHeld},
		{facts{route: routeAny, holdsPrimary: true}, whereHeld},
		{facts{route: routeAny, inWindow: true}, wherePrimary},
		{facts{route: routeAny, inTx: true}, whereTx},
	} {
		if got, _ := decide(c.f); got != c.want {
			t.Errorf("%+v: %s, want %s", c.f, got, c.want)
		}
	}
}

func TestWithinWindow(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		mode Mode
		last time.Time
		want bool
	}{
		{ModeWindow, now.Add(-100 * time.Millisecond), true},
		{ModeWindow, now.Add(-time.Second), false},
		{ModeWindow, time.Time{}, false},
		{ModeSession, now.Add(-100 * time.Millisecond), false},
		{"", now.Add(-100 * time.Millisecond), false},
	} {
		if got := withinWindow(c.mode, c.last, now, 500*time.Millisecond); got != c.want {
			t.Errorf("%s, %v ago: %v", c.mode, now.Sub(c.last), got)
		}
	}
}
