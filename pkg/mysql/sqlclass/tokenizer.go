package sqlclass

import "strings"

type kind int

const (
	tEOF kind = iota
	tWord
	tQuotedName // `name`, or "name" under ANSI_QUOTES
	tVar        // @name, @@name
	tNumber
	tString
	tPunct
)

type token struct {
	kind kind
	text string
	pos  int // where it starts in the statement
}

func (t token) upper() string { return strings.ToUpper(t.text) }

// is reports a word (unquoted) equal to w, which is upper case.
func (t token) is(w string) bool { return t.kind == tWord && strings.EqualFold(t.text, w) }

// tokenizer reads MySQL tokens as the server's lexer does for the quoting rules of a Mode.
// Comments are skipped (a /*master*/ or /*+ primary */ hint is noted); an executable comment
// (/*!...*/, /*!50700 ...*/, MariaDB's /*M!...*/ and /*M!100100 ...*/) is read as code, whatever
// its version: a statement seen with more code than the server runs can only look less like a
// plain read.
type tokenizer struct {
	s    string
	pos  int
	mode Mode
	hint bool // a primary hint was seen
}

func (t *tokenizer) next() token {
	for t.pos < len(t.s) {
		ch := t.s[t.pos]
		switch {
		case isSpace(ch):
			t.pos++
		case ch == '#':
			t.skipLine()
		case ch == '-' && strings.HasPrefix(t.s[t.pos:], "--") && (t.pos+2 == len(t.s) || t.s[t.pos+2] <= ' '):
			t.skipLine() // "-- " starts a comment when a space or a control character follows
		case ch == '/' && (strings.HasPrefix(t.s[t.pos:], "/*!") || strings.HasPrefix(t.s[t.pos:], "/*M!") || strings.HasPrefix(t.s[t.pos:], "/*m!")):
			t.pos += strings.IndexByte(t.s[t.pos:], '!') + 1
			for t.pos < len(t.s) && t.s[t.pos] >= '0' && t.s[t.pos] <= '9' {
				t.pos++ // the version
			}
		case ch == '*' && strings.HasPrefix(t.s[t.pos:], "*/"):
			t.pos += 2 // the end of an executable comment
		case ch == '/' && strings.HasPrefix(t.s[t.pos:], "/*"):
			end := strings.Index(t.s[t.pos+2:], "*/")
			body := t.s[t.pos+2:]
			if end >= 0 {
				body = body[:end]
				t.pos += end + 4
			} else {
				t.pos = len(t.s)
			}
			if isPrimaryHint(body) {
				t.hint = true
			}
		default:
			return t.token()
		}
	}
	return token{kind: tEOF, pos: len(t.s)}
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'
}

func (t *tokenizer) skipLine() {
	if i := strings.IndexByte(t.s[t.pos:], '\n'); i >= 0 {
		t.pos += i + 1
	} else {
		t.pos = len(t.s)
	}
}

// isPrimaryHint: the comment is /*master*/, /*primary*/ or an optimizer-hint form of them.
func isPrimaryHint(body string) bool {
	b := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(body), "+")))
	return b == "master" || b == "primary"
}

func isWordByte(b byte) bool {
	return b == '_' || b == '$' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b >= 0x80
}

func (t *tokenizer) token() token {
	start := t.pos
	ch := t.s[t.pos]
	switch {
	case ch == '\'':
		t.quoted(ch, !t.mode.has(NoBackslashEscapes))
		return token{kind: tString, text: t.s[start:t.pos], pos: start}
	case ch == '"' && t.mode.has(AnsiQuotes):
		t.quoted(ch, false)
		return token{kind: tQuotedName, text: unquote(t.s[start:t.pos], '"'), pos: start}
	case ch == '"':
		t.quoted(ch, !t.mode.has(NoBackslashEscapes))
		return token{kind: tString, text: t.s[start:t.pos], pos: start}
	case ch == '`':
		t.quoted(ch, false)
		return token{kind: tQuotedName, text: unquote(t.s[start:t.pos], '`'), pos: start}
	case ch == '@':
		t.pos++
		if t.pos < len(t.s) && t.s[t.pos] == '@' {
			t.pos++
		}
		if t.pos < len(t.s) && (t.s[t.pos] == '\'' || t.s[t.pos] == '"' || t.s[t.pos] == '`') {
			q := t.s[t.pos]
			t.quoted(q, q != '`' && !t.mode.has(NoBackslashEscapes))
		} else {
			for t.pos < len(t.s) && (isWordByte(t.s[t.pos]) || t.s[t.pos] == '.') {
				t.pos++
			}
		}
		return token{kind: tVar, text: t.s[start:t.pos], pos: start}
	case ch >= '0' && ch <= '9':
		for t.pos < len(t.s) && (isWordByte(t.s[t.pos]) || t.s[t.pos] == '.') {
			t.pos++
		}
		return token{kind: tNumber, text: t.s[start:t.pos], pos: start}
	case isWordByte(ch):
		for t.pos < len(t.s) && isWordByte(t.s[t.pos]) {
			t.pos++
		}
		return token{kind: tWord, text: t.s[start:t.pos], pos: start}
	case ch == ':' && strings.HasPrefix(t.s[t.pos:], ":="):
		t.pos += 2
		return token{kind: tPunct, text: ":=", pos: start}
	}
	t.pos++
	return token{kind: tPunct, text: t.s[start:t.pos], pos: start}
}

// quoted skips a quoted string or name; backslash escapes apply when backslash is set, a
// doubled quote always.
func (t *tokenizer) quoted(q byte, backslash bool) {
	t.pos++
	for t.pos < len(t.s) {
		switch t.s[t.pos] {
		case '\\':
			if backslash {
				t.pos += 2
				continue
			}
		case q:
			if t.pos+1 < len(t.s) && t.s[t.pos+1] == q {
				t.pos += 2
				continue
			}
			t.pos++
			return
		}
		t.pos++
	}
	t.pos = min(t.pos, len(t.s))
}

// unquote is a quoted name's text without its quotes (doubled quotes halved).
func unquote(s string, q byte) string {
	s = strings.TrimPrefix(s, string(q))
	s = strings.TrimSuffix(s, string(q))
	return strings.ReplaceAll(s, string(q)+string(q), string(q))
}

// peek is the next token, without consuming it.
func (t *tokenizer) peek() token {
	save, hint := t.pos, t.hint
	tok := t.next()
	t.pos, t.hint = save, hint
	return tok
}
