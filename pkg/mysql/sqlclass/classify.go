// Package sqlclass tells, from a statement's text alone, where a read/write-splitting proxy may
// run it. It is a tokenizer, not a grammar: it skips comments, strings and quoted names as the
// server reads them under the session's sql_mode and character set (Mode), reads executable
// comments (/*!...*/, /*M!...*/) as code, and looks for the few things that decide a route.
//
// It fails closed: a statement is a Read only when nothing in it can write or depend on the
// session's life on the primary; what it does not recognise (an unknown verb, a function that
// is not built in, a text it cannot read as the server would) is not a read. The statement is
// never refused.
package sqlclass

import (
	"slices"
	"strings"
)

// Class is what the proxy needs to know of one statement (or of a multi-statement text).
type Class struct {
	Verb string // the first keyword, upper-cased ("SELECT", "SET", ...); "" for none

	// Read: a plain read that a replica may answer, provided the stored functions it calls
	// (Funcs) do not modify data.
	Read bool
	// Funcs are the functions the statement calls that are not built in (stored functions or
	// UDFs), lower-cased, as written: "f" or "db.f". Set for reads only.
	Funcs []string
	// Last: answers about the previous statement of the session (SHOW WARNINGS, @@warning_count,
	// ROW_COUNT(), FOUND_ROWS()): it must run where that one ran.
	Last bool
	// Hint: a /*master*/ or /*+ primary */ comment forces the primary.
	Hint bool
	// HintedRead: a statement that would be Read but for its Hint: a read the primary serves
	// because it was asked to (counted as a read, not a write).
	HintedRead bool
	// Session: one SET of session or user variables (or NAMES, CHARACTER SET), or one USE,
	// whose whole effect the proxy can replay on another connection: system variables and the
	// schema by what the server reports (session tracking), user variables by Set.
	// It runs on the primary. Any other statement that changes the session's state pins it.
	Session bool
	// Set are a Session SET's assignments that are replayed as written: user variables set to
	// a literal ("@x" = "'abc'") and the collation of SET NAMES ... COLLATE
	// ("collation_connection"), which session tracking does not report.
	Set []Assign
	// SetStatement: SET STATEMENT ... FOR <statement>; the variables are the statement's only
	// (the server's session tracking reports them anyway: they are not the session's).
	SetStatement bool
	// Pin: state that cannot be replayed elsewhere (temporary tables, LOCK TABLES, GET_LOCK,
	// text PREPARE, user variables assigned in a query, SQL_CALC_FOUND_ROWS, HANDLER, a text
	// that cannot be read): the session stays on the primary until it ends or is reset.
	Pin bool
	// ReadOnlyTx: a single START TRANSACTION READ ONLY, a transaction a replica may serve.
	ReadOnlyTx bool
	// Multi: more than one statement.
	Multi bool
}

// Assign is one replayable assignment of a SET.
type Assign struct {
	Name  string // "@x" for a user variable, else a system variable's name
	Value string // the value as written
}

// functions whose value depends on the session's life on the primary, or on the primary
// itself, or that change state: never on a replica (and names ending in _WAIT: replication
// waits).
var primaryFuncs = map[string]bool{
	"LAST_INSERT_ID": true, "NEXTVAL": true, "LASTVAL": true, "SETVAL": true, "IS_FREE_LOCK": true,
	"IS_USED_LOCK": true, "CONNECTION_ID": true, "WAIT_FOR_EXECUTED_GTID_SET": true,
	"WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS": true, "LOAD_FILE": true, "BINLOG_GTID_POS": true,
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

// variables a SET STATEMENT ... FOR <read> may set and still be a read on a replica: they
// bound or tune the statement, none lifts the replica session's read-only mode.
var statementVars = words(`max_statement_time max_execution_time sql_select_limit
optimizer_switch optimizer_search_depth optimizer_prune_level optimizer_use_condition_selectivity
join_buffer_size join_cache_level sort_buffer_size tmp_table_size max_heap_table_size
long_query_time max_join_size sql_big_selects group_concat_max_len div_precision_increment
in_predicate_conversion_threshold optimizer_max_sel_arg_weight histogram_size`)

// Classify reads sql as the server would in mode and returns its class.
func Classify(sql string, mode Mode) Class {
	mode = mode.forText(sql)
	if mode.has(Unreadable) {
		c := classifyOnce(sql, mode&^QuotingUnknown)
		c.Read, c.ReadOnlyTx, c.Session, c.Set, c.Funcs = false, false, false, nil, nil
		c.Pin = true
		return c
	}
	if !mode.has(QuotingUnknown) || !strings.ContainsAny(sql, "\\\"") {
		return classifyOnce(sql, mode&^QuotingUnknown)
	}
	// The quoting rules are not known and matter to this text: it is what every reading says
	// at once (a read only if a read under all).
	c := classifyOnce(sql, QuotingUnknown)
	for _, m := range []Mode{AnsiQuotes, NoBackslashEscapes, AnsiQuotes | NoBackslashEscapes} {
		c = c.and(classifyOnce(sql, m|QuotingUnknown))
	}
	return c
}

// and is what two readings of one text agree on: each property that sends a statement away
// from a replica holds if it holds in either.
func (c Class) and(o Class) Class {
	c.Read = c.Read && o.Read
	c.ReadOnlyTx = c.ReadOnlyTx && o.ReadOnlyTx
	c.Last, c.Hint, c.Pin, c.Multi = c.Last || o.Last, c.Hint || o.Hint, c.Pin || o.Pin, c.Multi || o.Multi
	c.SetStatement = c.SetStatement || o.SetStatement
	if !c.Session || !o.Session || !slices.Equal(c.Set, o.Set) {
		c.Session, c.Set = false, nil
	}
	for _, f := range o.Funcs {
		if !slices.Contains(c.Funcs, f) {
			c.Funcs = append(c.Funcs, f)
		}
	}
	if !c.Read {
		c.Funcs = nil
	}
	return c
}

// classifier is one reading of a text.
type classifier struct {
	c      Class
	t      tokenizer
	hist   [3]token // the previous tokens: hist[0] the last
	depth  int
	stmts  int
	write  bool // not a plain read, whatever the verb
	global bool // SET of a global variable
	// WITH: the common table expressions before the main statement
	inCTEs bool
	// SET STATEMENT: waiting for its FOR; the statement after it is classified as the verb
	setStmt bool
	// SELECT ... INTO @a, @b: in the list of variables after INTO
	intoList bool
}

func classifyOnce(sql string, mode Mode) Class {
	k := &classifier{t: tokenizer{s: sql, mode: mode}}
	startOfStmt := true
	for {
		tok := k.t.next()
		if tok.kind == tEOF {
			break
		}
		if startOfStmt {
			if tok.kind == tPunct && tok.text == "(" {
				k.depth++
				k.push(tok)
				continue
			}
			if tok.kind == tPunct && tok.text == ";" {
				continue
			}
			k.stmts++
			startOfStmt = false
			if k.stmts == 1 && tok.kind == tWord {
				k.c.Verb = tok.upper()
				switch k.c.Verb {
				case "WITH":
					k.inCTEs = true
				case "SET":
					k.set(sql)
				}
			}
		}
		if tok.kind == tPunct && tok.text == ";" {
			startOfStmt = true
			k.depth = 0
			k.push(tok)
			continue
		}
		k.token(tok)
		k.push(tok)
	}
	return k.finish(sql)
}

func (k *classifier) push(tok token) {
	k.hist[2], k.hist[1], k.hist[0] = k.hist[1], k.hist[0], tok
}

// token looks at one token of a statement.
func (k *classifier) token(tok token) {
	prev, prev2 := k.hist[0], k.hist[1]
	if k.intoList {
		switch {
		case tok.kind == tVar && !strings.HasPrefix(tok.text, "@@"):
			k.c.Pin = true // SELECT ... INTO @x: the server does not report it as a state change
			return
		case tok.kind == tPunct && tok.text == ",":
			return
		}
		k.intoList = false
	}
	switch tok.kind {
	case tPunct:
		switch tok.text {
		case "(":
			k.depth++
			if prev.kind == tWord || prev.kind == tQuotedName {
				k.call(prev, prev2)
			}
		case ")":
			k.depth = max(k.depth-1, 0)
		case ":=":
			if k.c.Verb != "SET" {
				k.c.Pin = true // a user variable assigned in a query
			}
		}
	case tVar:
		if v, ok := strings.CutPrefix(tok.upper(), "@@"); ok {
			v = strings.TrimPrefix(strings.TrimPrefix(v, "SESSION."), "LOCAL.")
			k.c.Last = k.c.Last || lastVars[v]
			k.write = k.write || primaryVars[v]
		}
	case tWord:
		w := tok.upper()
		switch w {
		case "UPDATE":
			if prev.is("FOR") {
				k.write = true // FOR UPDATE: a locking read
			} else if k.c.Verb == "WITH" && k.depth == 0 {
				k.c.Verb = w
			}
		case "SHARE":
			if prev.is("FOR") || prev.is("IN") {
				k.write = true // FOR SHARE, LOCK IN SHARE MODE
			}
		case "INTO":
			if next := k.t.peek(); next.kind != tVar || strings.HasPrefix(next.text, "@@") {
				k.write = true // INTO OUTFILE, DUMPFILE, or a stored program's variables
			} else {
				k.intoList = true
			}
		case "SQL_CALC_FOUND_ROWS":
			k.c.Pin = true
		case "TEMPORARY":
			if k.c.Verb == "CREATE" {
				k.c.Pin = true
			}
		case "FOR":
			if prev.is("VALUE") && (prev2.is("NEXT") || prev2.is("PREVIOUS")) {
				k.write = true // NEXT VALUE FOR seq
			}
			if k.setStmt && k.depth == 0 {
				k.setStmt = false
				if next := k.t.peek(); next.kind == tWord {
					k.c.Verb = next.upper() // SET STATEMENT ... FOR: the statement's verb
					k.inCTEs = k.c.Verb == "WITH"
				}
			}
		case "INSERT", "DELETE", "REPLACE":
			if k.c.Verb == "WITH" && k.depth == 0 {
				k.c.Verb = w
			}
		case "SELECT":
			if k.depth == 0 {
				k.inCTEs = false // the main statement of a WITH
			}
		case "ANALYZE":
			if prev.kind == tEOF || prev.kind == tPunct || prev.is("EXPLAIN") || prev.is("DESCRIBE") || prev.is("DESC") {
				k.write = true // EXPLAIN ANALYZE runs the statement
			}
		case "READ":
			if k.c.Verb == "START" && k.t.peek().is("ONLY") {
				k.c.ReadOnlyTx = true
			}
		}
	}
}

// call looks at a function call: name is the token before its '(', before the one before.
func (k *classifier) call(name, before token) {
	fn := name.upper()
	qualified := before.kind == tPunct && before.text == "."
	if name.kind == tWord && !qualified {
		switch {
		case primaryFuncs[fn] || strings.HasSuffix(fn, "_WAIT"):
			k.write = true
			return
		case lastFuncs[fn]:
			k.c.Last = true
			return
		case lockFuncs[fn]:
			k.c.Pin = true
			return
		}
		lower := strings.ToLower(name.text)
		if builtins[lower] || notFunctions[lower] {
			return
		}
		if k.inCTEs && k.depth == 1 && (before.is("WITH") || before.is("RECURSIVE") || (before.kind == tPunct && before.text == ",")) {
			return // a common table expression's column list: WITH x (a, b) AS (...)
		}
	}
	f := strings.ToLower(name.text)
	if qualified {
		if db := k.hist[2]; db.kind == tWord || db.kind == tQuotedName {
			f = strings.ToLower(db.text) + "." + f
		}
	}
	if !slices.Contains(k.c.Funcs, f) {
		k.c.Funcs = append(k.c.Funcs, f)
	}
}

// set reads a SET statement's assignments (the tokenizer is just after SET) without consuming
// them: Session when each is a replayable one, SetStatement for SET STATEMENT ... FOR.
func (k *classifier) set(sql string) {
	t := k.t // a copy: the main loop reads the same tokens again
	session := true
	var set []Assign
	for {
		tok := t.next()
		scope := ""
		if tok.kind == tWord {
			switch w := tok.upper(); w {
			case "GLOBAL", "PERSIST", "PERSIST_ONLY":
				k.global = true
				return
			case "SESSION", "LOCAL":
				scope, tok = w, t.next()
			}
		}
		switch {
		case tok.is("STATEMENT") && scope == "":
			k.setStmt, k.c.SetStatement = true, true
			k.checkStatementVars(t)
			return
		case tok.is("NAMES"):
			tok = t.next() // the character set (its change is reported by the server)
			if t.peek().is("COLLATE") {
				t.next()
				coll := t.next()
				if coll.kind != tWord && coll.kind != tString && coll.kind != tQuotedName {
					return
				}
				set = append(set, Assign{Name: "collation_connection", Value: coll.text})
			}
			if tok.kind == tEOF {
				return
			}
		case tok.is("CHARACTER") && t.peek().is("SET"), tok.is("CHARSET"):
			if tok.is("CHARACTER") {
				t.next()
			}
			if t.next().kind == tEOF {
				return
			}
		case tok.kind == tVar && !strings.HasPrefix(tok.text, "@@") && scope == "":
			v, ok := assignment(&t, false)
			if !ok || !literal(v, t.mode) {
				session = false
			}
			set = append(set, Assign{Name: tok.text, Value: v})
		case tok.kind == tVar || tok.kind == tWord || tok.kind == tQuotedName:
			name := strings.ToLower(strings.TrimPrefix(tok.text, "@@"))
			if strings.HasPrefix(name, "global.") || strings.HasPrefix(name, "persist") {
				k.global = true
				return
			}
			if tok.kind == tWord && name == "transaction" {
				// SET [SESSION] TRANSACTION ...: what it changes for the session is reported
				// (tx_isolation, tx_read_only); it is a statement of its own.
				for t.peek().kind != tEOF && !(t.peek().kind == tPunct && t.peek().text == ";") {
					t.next()
				}
				break
			}
			if tok.kind == tWord && (name == "password" || name == "role" || name == "default") {
				return // not a variable: SET PASSWORD, ROLE, DEFAULT ROLE
			}
			if _, ok := assignment(&t, false); !ok {
				return
			}
		default:
			return
		}
		switch end := t.next(); {
		case end.kind == tPunct && end.text == ",":
			continue
		case end.kind == tEOF:
			k.c.Session, k.c.Set = session, set
			if !session {
				k.c.Set = nil
			}
			return
		default:
			return // a second statement, or something this reading does not know
		}
	}
}

// assignment reads "= expr" or ":= expr" up to a ',' outside parentheses or the end of the
// statement (or, for SET STATEMENT, its FOR), and returns the expression's text.
func assignment(t *tokenizer, stopAtFor bool) (string, bool) {
	op := t.next()
	if op.kind != tPunct || (op.text != "=" && op.text != ":=") {
		return "", false
	}
	start, depth := -1, 0
	end := t.pos
	for {
		next := t.peek()
		if next.kind == tEOF || (next.kind == tPunct && depth == 0 && (next.text == "," || next.text == ";")) ||
			(stopAtFor && depth == 0 && next.is("FOR")) {
			break
		}
		tok := t.next()
		if start < 0 {
			start = tok.pos
		}
		switch tok.text {
		case "(":
			depth++
		case ")":
			depth--
		}
		end = t.pos
	}
	if start < 0 {
		return "", false
	}
	return strings.TrimSpace(t.s[start:end]), true
}

// literal reports whether a user variable's value can be replayed as written on another
// connection and mean the same there: a number, a string without backslashes (under unknown
// quoting rules), NULL, TRUE, FALSE, with a sign, an introducer or a COLLATE. An expression,
// a variable or a function may have another value there.
func literal(v string, mode Mode) bool {
	t := tokenizer{s: v, mode: mode}
	tok := t.next()
	if tok.kind == tPunct && (tok.text == "-" || tok.text == "+") {
		tok = t.next()
	}
	switch {
	case tok.kind == tNumber:
	case tok.kind == tString && !strings.HasPrefix(tok.text, `"`):
		if mode.has(QuotingUnknown) && strings.Contains(tok.text, `\`) {
			return false
		}
	case tok.is("NULL") || tok.is("TRUE") || tok.is("FALSE"):
	case tok.kind == tWord && (strings.HasPrefix(tok.text, "_") || tok.is("X") || tok.is("B") || tok.is("N")):
		s := t.next() // an introducer or X'..', B'..', N'..': the string must follow at once
		if s.kind != tString || s.pos != tok.pos+len(tok.text) || strings.HasPrefix(s.text, `"`) ||
			(mode.has(QuotingUnknown) && strings.Contains(s.text, `\`)) {
			return false
		}
	default:
		return false
	}
	if t.peek().is("COLLATE") {
		t.next()
		if c := t.next(); c.kind != tWord {
			return false
		}
	}
	return t.next().kind == tEOF
}

// checkStatementVars reads SET STATEMENT's variables up to FOR: one that is not in
// statementVars makes the statement not a read.
func (k *classifier) checkStatementVars(t tokenizer) {
	for {
		tok := t.next()
		if tok.kind == tVar {
			tok.text = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(tok.text, "@@"), "session."), "SESSION.")
			tok.kind = tWord
		}
		if tok.kind != tWord || !statementVars[strings.ToLower(tok.text)] {
			k.write = true
			return
		}
		if _, ok := assignment(&t, true); !ok {
			k.write = true
			return
		}
		switch end := t.next(); {
		case end.kind == tPunct && end.text == ",":
		case end.is("FOR"):
			return
		default:
			k.write = true
			return
		}
	}
}

func (k *classifier) finish(sql string) Class {
	c := k.c
	c.Multi = k.stmts > 1
	c.Hint = k.t.hint
	switch c.Verb {
	case "SELECT", "WITH", "VALUES", "TABLE", "HELP", "DESCRIBE", "DESC", "EXPLAIN":
		c.Read = true
	case "SHOW":
		c.Read, c.Last = showRead(sql, k.t.mode)
	case "SET":
		if k.global || len(c.Funcs) > 0 {
			c.Session, c.Set = false, nil // a global variable, or a value a stored function computes
		}
	case "USE":
		if c.Multi {
			break
		}
		t := tokenizer{s: sql, mode: k.t.mode}
		t.next()
		if db := t.next(); (db.kind == tWord || db.kind == tQuotedName) && t.next().kind == tEOF {
			c.Session = true
		}
	case "LOCK", "HANDLER", "PREPARE":
		c.Pin = true
	}
	if c.Verb != "START" || c.Multi {
		c.ReadOnlyTx = false
	}
	if c.Multi || c.Pin {
		c.Session, c.Set = false, nil
	}
	if k.write || c.Last || c.Pin || c.Multi || k.setStmt {
		c.Read = false
	}
	if c.Hint && c.Read {
		// Only without stored functions: one that writes makes it a write (the window after it).
		c.Read, c.HintedRead = false, len(c.Funcs) == 0
	}
	if !c.Read {
		c.Funcs = nil
	}
	return c
}

// showRead: SHOW statements a replica answers as the primary would; those about the previous
// statement (warnings, errors) follow it (last); the others (binary logs, replication,
// processes, session counters) go to the primary.
func showRead(sql string, mode Mode) (read, last bool) {
	t := tokenizer{s: sql, mode: mode}
	for tok := t.next(); tok.kind != tEOF; tok = t.next() {
		if tok.is("SHOW") {
			break
		}
	}
	w := t.next()
	if w.kind != tWord {
		return false, false
	}
	switch w.upper() {
	case "WARNINGS", "ERRORS", "COUNT":
		return false, true
	case "MASTER", "BINARY", "BINLOG", "SLAVE", "REPLICA", "RELAYLOG", "PROCESSLIST", "FULL", "STATUS",
		"SESSION", "PROFILE", "PROFILES", "ENGINE", "OPEN", "ALL":
		return false, false
	}
	return true, false
}
