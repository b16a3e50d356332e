package session

import (
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
)

// Where a statement runs is decided here, from facts the session gathers, with no I/O: what
// the statement is (its class), what the session holds (an open transaction, state pinned to
// the primary, autocommit off, a write a moment ago in window mode) and which connections it
// holds. The session then takes the connection the decision names; a replica is taken only if
// one is usable and has seen what the session must see, else the primary serves.

// route is where a command wants to run, before the session's state decides.
type route int

const (
	routePrimary route = iota // the primary
	routeRead                 // a replica (the primary when none is usable)
	routeAny                  // the connection held, or a replica
	routeLast                 // where the previous statement ran
)

// routeFor is where a statement of class c wants to run: a read goes to a replica only when
// every function it calls that is not built in is known not to modify data (vouched).
func routeFor(c sqlclass.Class, vouched func(funcs []string) bool) route {
	switch {
	case c.Last:
		return routeLast
	case c.ReadOnlyTx, c.Read && vouched(c.Funcs):
		return routeRead
	}
	return routePrimary
}

// where is the connection a command runs on.
type where int

const (
	wherePrimary where = iota // the session's primary connection
	whereReplica              // its replica connection (the primary when none fits)
	whereTx                   // the connection of the open transaction
	whereLast                 // the connection the previous statement ran on
	whereHeld                 // the primary's connection if held, else the replica's
)

func (w where) String() string {
	return [...]string{"primary", "replica", "transaction", "last", "held"}[w]
}

// facts are what the session's state says about where a command may run.
type facts struct {
	route         route
	inTx          bool // a transaction is open
	pinned        bool // state that cannot move: temporary tables, locks, user variables set by :=, ...
	autocommitOff bool // the primary's session has autocommit off: every statement is in a transaction
	inWindow      bool // window mode, within the window after the session's last write
	hasLast       bool // a statement ran before
	holdsPrimary  bool
	holdsReplica  bool
}

// decide is where a command runs; windowed says the window after a write sent a read to
// the primary.
func decide(f facts) (w where, windowed bool) {
	switch {
	case f.inTx:
		return whereTx, false
	case f.pinned || f.autocommitOff:
		return wherePrimary, false
	}
	switch f.route {
	case routeLast:
		if f.hasLast {
			return whereLast, false
		}
	case routeAny:
		if f.holdsPrimary || f.holdsReplica {
			return whereHeld, false
		}
		return read(f)
	case routeRead:
		return read(f)
	}
	return wherePrimary, false
}

// read is where a read goes: the primary within the window after a write, else a replica.
func read(f facts) (where, bool) {
	if f.inWindow {
		return wherePrimary, true
	}
	return whereReplica, false
}

// withinWindow reports whether now is within window after lastWrite in window mode.
func withinWindow(mode Mode, lastWrite, now time.Time, window time.Duration) bool {
	return mode.Effective() == ModeWindow && !lastWrite.IsZero() && now.Sub(lastWrite) < window
}
