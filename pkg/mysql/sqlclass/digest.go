package sqlclass

import (
	"hash/fnv"
	"strings"
)

// DigestMax bounds a digest's text: a statement longer than that in normal form is cut there,
// so one huge statement cannot hold much memory however many digests are kept.
const DigestMax = 1024

// Digest is a statement's normal form and its id, for the query digests: what the server's
// lexer reads (this package's tokenizer, under the session's quoting rules), with every literal
// (string, number, hex, bit, with an introducer or N prefix) a "?", an IN list or the rows of
// VALUES made only of literals and placeholders "(...)", comments and whitespace gone, words
// lower case (quoted names as written, in backquotes) and one space between tokens where SQL
// needs or shows one. Statements that differ only in their literals, the length of such
// lists, comments, spacing or the case of keywords have one digest.
//
// The id is the 64-bit FNV-1a hash of the text, printed as 16 hex digits: the same for the
// same text on every run and version (a change of the normal form is a change of ids, and
// says so in the release notes).
func Digest(sql string, mode Mode) (text string, id uint64) {
	text = normalize(sql, mode.forText(sql)&^QuotingUnknown)
	h := fnv.New64a()
	h.Write([]byte(text))
	return text, h.Sum64()
}

func normalize(sql string, mode Mode) string {
	t := tokenizer{s: sql, mode: mode}
	var toks []string
	var prev token
	for tok := t.next(); tok.kind != tEOF; tok = t.next() {
		switch {
		case tok.kind == tString && prev.kind == tWord && prev.pos+len(prev.text) == tok.pos && introducer(prev.text):
			toks[len(toks)-1] = "?" // X'..', B'..', N'..', _utf8mb4'..'
		case tok.kind == tString, tok.kind == tNumber:
			toks = append(toks, "?")
			// A sign before a number is part of the literal where no operand precedes it.
			if n := len(toks); tok.kind == tNumber && n >= 2 && (toks[n-2] == "-" || toks[n-2] == "+") && !operand(toks[:n-2]) {
				toks = append(toks[:n-2], "?")
			}
		case tok.kind == tPunct && strings.HasPrefix(sql[tok.pos:], "(...)"):
			toks = append(toks, "(...)") // a digest's own collapsed list
			t.pos = tok.pos + len("(...)")
		case tok.kind == tQuotedName:
			toks = append(toks, "`"+strings.ReplaceAll(tok.text, "`", "``")+"`")
		case tok.kind == tWord:
			toks = append(toks, strings.ToLower(tok.text))
		default:
			toks = append(toks, tok.text)
		}
		prev = tok
	}
	for len(toks) > 0 && toks[len(toks)-1] == ";" {
		toks = toks[:len(toks)-1] // trailing semicolons are not part of the statement
	}
	toks = collapseLists(toks)
	var b strings.Builder
	for i, s := range toks {
		if i > 0 && spaceBetween(toks[i-1], s) {
			b.WriteByte(' ')
		}
		b.WriteString(s)
		if b.Len() >= DigestMax {
			break
		}
	}
	out := b.String()
	if len(out) > DigestMax {
		out = out[:DigestMax]
	}
	return out
}

// introducer: a word that makes the string after it one literal (X'0F', _latin1'a', N'b').
func introducer(w string) bool {
	switch strings.ToLower(w) {
	case "x", "b", "n":
		return true
	}
	return strings.HasPrefix(w, "_")
}

// operand reports whether the normal form so far ends with something a sign after it would
// subtract from or add to (a literal, a name, a closing parenthesis), so the sign is an operator.
func operand(toks []string) bool {
	if len(toks) == 0 {
		return false
	}
	last := toks[len(toks)-1]
	switch {
	case last == "?" || last == ")" || strings.HasPrefix(last, "`") || strings.HasPrefix(last, "@"):
		return true
	case isWordByte(last[0]):
		return !keywordBeforeOperand[last]
	}
	return false
}

// keywordBeforeOperand are words after which a sign starts a literal (where x = -1 or LIMIT -1
// would go: after an operator keyword, not after a column name).
var keywordBeforeOperand = map[string]bool{
	"select": true, "where": true, "and": true, "or": true, "not": true, "in": true, "values": true, "value": true,
	"set": true, "by": true, "limit": true, "offset": true, "between": true, "like": true, "is": true, "case": true,
	"when": true, "then": true, "else": true, "return": true, "interval": true, "having": true, "on": true, "xor": true,
	"div": true, "mod": true,
}

// collapseLists turns "in ( ? , ? , ... )" and "values ( ?, ? ) , ( ?, ? )" made only of
// literals into "in (...)" and "values (...)".
func collapseLists(toks []string) []string {
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		out = append(out, toks[i])
		if toks[i] != "in" && toks[i] != "values" && toks[i] != "value" {
			continue
		}
		j := i + 1
		rows := 0
		for j < len(toks) && toks[j] == "(" {
			end, ok := literalList(toks, j)
			if !ok || toks[i] == "in" && rows == 1 {
				break
			}
			rows++
			j = end + 1
			if toks[i] == "in" || j >= len(toks) || toks[j] != "," || j+1 >= len(toks) || toks[j+1] != "(" {
				break
			}
			j++ // the comma between rows
		}
		if rows > 0 {
			if j < len(toks) && toks[j] == "," && toks[i] != "in" {
				j-- // a comma that does not start another row is not the list's
			}
			out = append(out, "(...)")
			i = j - 1
		}
	}
	return out
}

// literalList: toks[open] is "(" and what follows up to its ")" is literals and commas; end
// is the ")".
func literalList(toks []string, open int) (end int, ok bool) {
	for k := open + 1; k < len(toks); k++ {
		switch toks[k] {
		case ")":
			return k, k > open+1
		case "?", ",", "null":
		default:
			return 0, false
		}
	}
	return 0, false
}

// spaceBetween says whether the normal form has a space between two tokens: none inside
// parentheses' edges, before a comma or around a dot, none between a built-in function's name
// and its "(" (sum(k), now()), one elsewhere (a table's column list, a stored function).
func spaceBetween(a, b string) bool {
	switch {
	case b == "," || b == ")" || a == "(":
		return false
	case a == ".":
		return !nameLike(b)
	case b == ".":
		return !nameLike(a)
	case b == "(":
		return !builtins[a] || keywordBeforeOperand[a]
	}
	return true
}

// nameLike: a token a dot joins without spaces (db.t, t.col, t.*).
func nameLike(s string) bool { return isWordByte(s[0]) || s[0] == '`' || s == "*" }
