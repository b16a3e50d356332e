// Package sqlclass tells, from a statement's text alone, where a read/write-splitting proxy may
// run it. It is a tokenizer, not a grammar: it skips comments, strings and quoted names, reads
// MySQL's executable comments (/*!...*/) as code, and looks for the few things that decide a
// route. What it does not recognise goes to the primary: the statement is never refused.
package sqlclass

import "strings"

// Class is what the proxy needs to know of one statement (or of a multi-statement text).
type Class struct {
	Verb string // the first keyword, upper-cased ("SELECT", "SET", ...); "" for none

	// Read: a plain read that a replica may answer.
	Read bool
	// Last: answers about the previous statement of the session (SHOW WARNINGS, @@warning_count,
	// ROW_COUNT(), FOUND_ROWS()): it must run where that one ran.
	Last bool
	// Hint: a /*master*/ or /*+ primary */ comment forces the primary.
	Hint bool
	// Session: a change of session state (SET, USE) that runs on the primary and is replayed
	// on a replica connection before its next use.
	Session bool
	// Pin: state that cannot be replayed elsewhere (temporary tables, LOCK TABLES, GET_LOCK,
	// text PREPARE, user variables assigned with :=, SQL_CALC_FOUND_ROWS, HANDLER): the session
	// stays on the primary until it ends or is reset.
	Pin bool
	// ReadOnlyTx: START TRANSACTION READ ONLY, a transaction a replica may serve.
	ReadOnlyTx bool
	// Multi: more than one statement.
	Multi bool
}

// functions whose value depends on the session's life on the primary, or that change state:
// never on a replica (and names ending in _WAIT: replication waits).
var primaryFuncs = map[string]bool{
	"LAST_INSERT_ID": true, "NEXTVAL": true, "LASTVAL": true, "SETVAL": true, "IS_FREE_LOCK": true,
	"IS_USED_LOCK": true, "CONNECTION_ID": true, "WAIT_FOR_EXECUTED_GTID_SET": true,
	"WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS": true,
}

// functions about the previous statement.
var lastFuncs = map[string]bool{"FOUND_ROWS": true, "ROW_COUNT": true}

// functions that take or release a named lock: they pin the session.
var lockFuncs = map[string]bool{"GET_LOCK": true, "RELEASE_LOCK": true, "RELEASE_ALL_LOCKS": true}

// session variables about the previous statement, and about the session on the primary.
var (
	lastVars    = map[string]bool{"WARNING_COUNT": true, "ERROR_COUNT": true}
	primaryVars = map[string]bool{"LAST_INSERT_ID": true, "IDENTITY": true, "LAST_GTID": true, "INSERT_ID": true}
)

// Classify reads sql and returns its class.
func Classify(sql string) Class {
	var c Class
	t := tokenizer{s: sql}
	var prev, prev2 token
	depth, stmts := 0, 0
	startOfStmt := true
	setGlobal := false
	write := false // not a plain read, whatever the verb
	for {
		tok := t.next(&c)
		if tok.kind == tEOF {
			break
		}
		if startOfStmt {
			if tok.kind == tPunct && tok.text == "(" {
				depth++
				continue
			}
			if tok.kind == tPunct && tok.text == ";" {
				continue
			}
			stmts++
			startOfStmt = false
			if stmts == 1 && tok.kind == tWord {
				c.Verb = tok.upper()
			}
		}
		switch tok.kind {
		case tPunct:
			switch tok.text {
			case "(":
				depth++
				if prev.kind == tWord {
					fn := prev.upper()
					write = write || primaryFuncs[fn] || strings.HasSuffix(fn, "_WAIT")
					c.Last = c.Last || lastFuncs[fn]
					c.Pin = c.Pin || lockFuncs[fn]
				}
			case ")":
				depth = max(depth-1, 0)
			case ";":
				startOfStmt = true
				depth = 0
			case ":=":
				c.Pin = true
			}
		case tVar:
			if v, ok := strings.CutPrefix(tok.upper(), "@@"); ok {
				v = strings.TrimPrefix(strings.TrimPrefix(v, "SESSION."), "LOCAL.")
				c.Last = c.Last || lastVars[v]
				write = write || primaryVars[v]
			}
		case tWord:
			w := tok.upper()
			switch w {
			case "UPDATE":
				if prev.kind == tWord && prev.upper() == "FOR" {
					write = true // FOR UPDATE: a locking read
				}
			case "SHARE":
				if prev.kind == tWord && (prev.upper() == "FOR" || prev.upper() == "IN") {
					write = true // FOR SHARE, LOCK IN SHARE MODE
				}
			case "INTO":
				write = write || c.Verb == "SELECT" || c.Verb == "WITH" // SELECT ... INTO
			case "SQL_CALC_FOUND_ROWS":
				c.Pin = true
			case "TEMPORARY":
				if c.Verb == "CREATE" {
					c.Pin = true
				}
			case "GLOBAL", "PERSIST", "PERSIST_ONLY", "PASSWORD":
				if c.Verb == "SET" && !(w == "PASSWORD" && prev.kind == tWord && prev.upper() != "SET") {
					setGlobal = true
				}
			case "FOR":
				if prev.kind == tWord && prev.upper() == "VALUE" && prev2.kind == tWord && (prev2.upper() == "NEXT" || prev2.upper() == "PREVIOUS") {
					write = true // NEXT VALUE FOR seq
				}
			case "INSERT", "DELETE", "REPLACE":
				if c.Verb == "WITH" && depth == 0 {
					c.Verb = w
				}
			}
			if w == "UPDATE" && c.Verb == "WITH" && depth == 0 {
				c.Verb = w
			}
			if w == "READ" && c.Verb == "START" {
				if nxt := t.peekWord(); nxt == "ONLY" {
					c.ReadOnlyTx = true
				}
			}
		}
		prev2, prev = prev, tok
	}
	c.Multi = stmts > 1
	switch c.Verb {
	case "SELECT", "WITH", "VALUES", "TABLE", "HELP", "DESCRIBE", "DESC", "EXPLAIN":
		c.Read = true
	case "SHOW":
		c.Read, c.Last = showRead(sql)
	case "SET":
		c.Session = !setGlobal
	case "USE":
		c.Session = true
	case "LOCK", "HANDLER", "PREPARE":
		c.Pin = true
	case "START":
	default:
		c.ReadOnlyTx = false
	}
	if c.Verb != "START" {
		c.ReadOnlyTx = false
	}
	if write || c.Last || c.Pin || c.Multi || c.Hint {
		c.Read = false
	}
	return c
}

// showRead: SHOW statements a replica answers as the primary would; those about the previous
// statement (warnings, errors) follow it (last); the others (binary logs, replication,
// processes, session counters) go to the primary.
func showRead(sql string) (read, last bool) {
	t := tokenizer{s: sql}
	var c Class
	for tok := t.next(&c); tok.kind != tEOF; tok = t.next(&c) {
		if tok.kind == tWord && tok.upper() == "SHOW" {
			break
		}
	}
	w := t.next(&c)
	if w.kind != tWord {
		return false, false
	}
	switch w.upper() {
	case "WARNINGS", "ERRORS", "COUNT":
		return false, true
	case "MASTER", "BINARY", "BINLOG", "SLAVE", "REPLICA", "RELAYLOG", "PROCESSLIST", "FULL", "STATUS",
		"SESSION", "PROFILE", "PROFILES", "ENGINE", "OPEN":
		return false, false
	}
	return true, false
}

// UseSchema is the schema a USE statement names ("" if sql is not one).
func UseSchema(sql string) string {
	t := tokenizer{s: sql}
	var c Class
	if w := t.next(&c); w.kind != tWord || w.upper() != "USE" {
		return ""
	}
	if db := t.next(&c); db.kind == tWord {
		return db.text
	}
	return ""
}
