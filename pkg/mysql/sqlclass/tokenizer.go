package sqlclass

import "strings"

type kind int

const (
	tEOF kind = iota
	tWord
	tVar // @name, @@name
	tNumber
	tString
	tPunct
)

type token struct {
	kind kind
	text string
}

func (t token) upper() string { return strings.ToUpper(t.text) }

// tokenizer reads MySQL tokens. Comments are skipped (a /*master*/ or /*+ primary */ hint is
// noted in the Class); an executable comment /*!...*/ (or /*!50700 ...*/) is read as code.
type tokenizer struct {
	s   string
	pos int
}

func (t *tokenizer) next(c *Class) token {
	for t.pos < len(t.s) {
		ch := t.s[t.pos]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v':
			t.pos++
		case ch == '#':
			t.skipLine()
		case ch == '-' && strings.HasPrefix(t.s[t.pos:], "--") && (t.pos+2 == len(t.s) || isSpace(t.s[t.pos+2])):
			t.skipLine()
		case ch == '/' && strings.HasPrefix(t.s[t.pos:], "/*!"):
			t.pos += 3
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
				c.Hint = true
			}
		default:
			return t.token()
		}
	}
	return token{kind: tEOF}
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
	case ch == '\'' || ch == '"':
		t.quoted(ch, true)
		return token{kind: tString, text: t.s[start:t.pos]}
	case ch == '`':
		t.quoted(ch, false)
		return token{kind: tWord, text: strings.Trim(t.s[start:t.pos], "`")}
	case ch == '@':
		t.pos++
		if t.pos < len(t.s) && t.s[t.pos] == '@' {
			t.pos++
		}
		if t.pos < len(t.s) && (t.s[t.pos] == '\'' || t.s[t.pos] == '"' || t.s[t.pos] == '`') {
			t.quoted(t.s[t.pos], t.s[t.pos] != '`')
		} else {
			for t.pos < len(t.s) && (isWordByte(t.s[t.pos]) || t.s[t.pos] == '.') {
				t.pos++
			}
		}
		return token{kind: tVar, text: t.s[start:t.pos]}
	case ch >= '0' && ch <= '9':
		for t.pos < len(t.s) && (isWordByte(t.s[t.pos]) || t.s[t.pos] == '.') {
			t.pos++
		}
		return token{kind: tNumber, text: t.s[start:t.pos]}
	case isWordByte(ch):
		for t.pos < len(t.s) && isWordByte(t.s[t.pos]) {
			t.pos++
		}
		return token{kind: tWord, text: t.s[start:t.pos]}
	case ch == ':' && strings.HasPrefix(t.s[t.pos:], ":="):
		t.pos += 2
		return token{kind: tPunct, text: ":="}
	}
	t.pos++
	return token{kind: tPunct, text: t.s[start:t.pos]}
}

// quoted skips a quoted string or name; backslash escapes apply to strings, a doubled quote
// to both.
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

// peekWord is the next word, upper-cased, without consuming it ("" if the next token is not one).
func (t *tokenizer) peekWord() string {
	save := t.pos
	var c Class
	tok := t.next(&c)
	t.pos = save
	if tok.kind != tWord {
		return ""
	}
	return tok.upper()
}
