package sqlclass

import (
	"strconv"
	"strings"
)

// ReplaceConnectionID returns sql with each call of CONNECTION_ID() in its code (not in
// strings, names or comments) replaced by id, the connection id the proxy announced to its
// client, and whether there was one. Where the quoting rules are not known and the readings
// disagree on where the calls are, nothing is replaced (the server's id is answered).
func ReplaceConnectionID(sql string, mode Mode, id uint32) (string, bool) {
	if !containsFold(sql, "connection_id") {
		return sql, false
	}
	mode = mode.forText(sql)
	if mode.has(Unreadable) {
		return sql, false
	}
	calls := connectionIDCalls(sql, mode&^QuotingUnknown)
	if mode.has(QuotingUnknown) && strings.ContainsAny(sql, "\\\"") {
		for _, m := range []Mode{AnsiQuotes, NoBackslashEscapes, AnsiQuotes | NoBackslashEscapes} {
			other := connectionIDCalls(sql, m)
			if len(other) != len(calls) {
				return sql, false
			}
			for i := range other {
				if other[i] != calls[i] {
					return sql, false
				}
			}
		}
	}
	if len(calls) == 0 {
		return sql, false
	}
	var b strings.Builder
	last := 0
	for _, c := range calls {
		b.WriteString(sql[last:c[0]])
		b.WriteString(strconv.FormatUint(uint64(id), 10))
		last = c[1]
	}
	b.WriteString(sql[last:])
	return b.String(), true
}

// connectionIDCalls are the [start, end) ranges of CONNECTION_ID() calls in sql.
func connectionIDCalls(sql string, mode Mode) [][2]int {
	t := tokenizer{s: sql, mode: mode}
	var out [][2]int
	var prev token
	for tok := t.next(); tok.kind != tEOF; tok = t.next() {
		if tok.is("CONNECTION_ID") && !(prev.kind == tPunct && prev.text == ".") {
			save := t.pos
			if open := t.next(); open.kind == tPunct && open.text == "(" {
				if cl := t.next(); cl.kind == tPunct && cl.text == ")" {
					out = append(out, [2]int{tok.pos, cl.pos + 1})
					prev = cl
					continue
				}
			}
			t.pos = save
		}
		prev = tok
	}
	return out
}

// containsFold reports whether s contains lower (ASCII, lower case) in any case, without
// allocating: it runs for every statement.
func containsFold(s, lower string) bool {
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// Kill is a KILL statement: KILL [HARD | SOFT] [CONNECTION | QUERY [ID]] {id | USER name}.
type Kill struct {
	Query   bool   // QUERY: the running statement only; else the connection
	ID      uint64 // the thread id (or, with QueryID, a query id)
	QueryID bool   // KILL QUERY ID <query id>
	User    string // KILL ... USER name: every connection of the user
	Host    string // KILL ... USER name@host: of the user from hosts matching this pattern
}

// accountPart is the user or host name a token of an account name spells (bob, `bob`,
// 'bob', "bob").
func accountPart(tok token) (string, bool) {
	switch tok.kind {
	case tWord:
		return tok.text, true
	case tQuotedName:
		return strings.Trim(tok.text, "`"), true
	case tString:
		if len(tok.text) >= 2 {
			return strings.ReplaceAll(tok.text[1:len(tok.text)-1], tok.text[:1]+tok.text[:1], tok.text[:1]), true
		}
	}
	return "", false
}

// quotedKind is the kind of token text is as the host after '@' (which the tokenizer keeps
// in the variable's token).
func quotedKind(text string) kind {
	switch {
	case strings.HasPrefix(text, "'") || strings.HasPrefix(text, `"`):
		return tString
	case strings.HasPrefix(text, "`"):
		return tQuotedName
	}
	return tWord
}

// ParseKill reads a single KILL statement; false for anything else.
func ParseKill(sql string, mode Mode) (Kill, bool) {
	var k Kill
	t := tokenizer{s: sql, mode: mode.forText(sql) &^ QuotingUnknown}
	if !t.next().is("KILL") {
		return k, false
	}
	tok := t.next()
	if tok.is("HARD") || tok.is("SOFT") {
		tok = t.next()
	}
	switch {
	case tok.is("CONNECTION"):
		tok = t.next()
	case tok.is("QUERY"):
		k.Query, tok = true, t.next()
		if tok.is("ID") {
			k.QueryID, tok = true, t.next()
		}
	}
	switch {
	case tok.is("USER"):
		var ok bool
		if k.User, ok = accountPart(t.next()); !ok {
			return k, false
		}
		if at := t.peek(); at.kind == tVar && !strings.HasPrefix(at.text, "@@") {
			t.next()
			if at.text == "@" { // user @ host
				k.Host, ok = accountPart(t.next())
			} else {
				k.Host, ok = accountPart(token{kind: quotedKind(at.text[1:]), text: at.text[1:]})
			}
			if !ok {
				return k, false
			}
		}
	case tok.kind == tNumber:
		id, err := strconv.ParseUint(tok.text, 10, 64)
		if err != nil {
			return k, false
		}
		k.ID = id
	default:
		return k, false
	}
	if end := t.next(); end.kind != tEOF && !(end.kind == tPunct && end.text == ";" && t.next().kind == tEOF) {
		return k, false
	}
	return k, true
}
