package sqlclass

import "strings"

// Mode is how the server reads a session's statement text: the quoting rules of its sql_mode
// and what its character set does to a backslash. The tokenizer must read a text as the server
// will, or a second statement hides in what it takes for a string.
type Mode uint8

const (
	// AnsiQuotes: "..." quotes a name, not a string (sql_mode ANSI_QUOTES, and ANSI, DB2,
	// MAXDB, MSSQL, ORACLE, POSTGRESQL, which include it).
	AnsiQuotes Mode = 1 << iota
	// NoBackslashEscapes: a backslash in a string is a character (sql_mode NO_BACKSLASH_ESCAPES).
	NoBackslashEscapes
	// QuotingUnknown: the session's sql_mode is not known (a server's default applies, and the
	// primary's and a replica's may differ): a text is read under every quoting rule, and it is
	// a read only if it is one under all of them.
	QuotingUnknown
	// Unreadable: the tokenizer cannot read the text as the server does: a character set whose
	// multi-byte characters may end in 0x5C (big5, cp932, gbk, sjis, gb18030), for a text with
	// non-ASCII bytes and a 0x5C byte, which may be a backslash that escapes a quote or the
	// second half of a character; or an sql_mode that changes the grammar (ORACLE, MSSQL).
	// Such a text goes to the primary, is never replayed, and pins the session.
	Unreadable
)

func (m Mode) has(f Mode) bool { return m&f != 0 }

// backslashCharsets are the character sets in which the trailing byte of a multi-byte
// character may be 0x5C.
var backslashCharsets = map[string]bool{"big5": true, "cp932": true, "gbk": true, "sjis": true, "gb18030": true}

// ModeOf is the Mode of a session whose sql_mode is sqlMode (known false: not known) and whose
// character_set_client is charset.
func ModeOf(sqlMode string, known bool, charset string) Mode {
	var m Mode
	if backslashCharsets[strings.ToLower(charset)] {
		m |= multiByte // only a text with non-ASCII bytes is unreadable (see forText)
	}
	if !known {
		return m | QuotingUnknown
	}
	for f := range strings.SplitSeq(strings.ToUpper(sqlMode), ",") {
		switch strings.TrimSpace(f) {
		case "ANSI_QUOTES", "ANSI", "DB2", "MAXDB", "POSTGRESQL":
			m |= AnsiQuotes
		case "MSSQL", "ORACLE":
			m |= AnsiQuotes | Unreadable
		case "NO_BACKSLASH_ESCAPES":
			m |= NoBackslashEscapes
		}
	}
	return m
}

// multiByte marks a backslash character set (see Unreadable). Only the trailing byte 0x5C
// changes what is code: other trailing bytes that are quotes (0x60 in big5 and sjis) make the
// server's quoted part longer than the tokenizer's, never shorter.
const multiByte Mode = 1 << 7

// forText is the mode a text is read in: under a backslash character set, a text with a
// non-ASCII byte and a 0x5C byte is unreadable.
func (m Mode) forText(sql string) Mode {
	if m.has(multiByte) && strings.IndexByte(sql, '\\') >= 0 {
		for i := 0; i < len(sql); i++ {
			if sql[i] >= 0x80 {
				return m | Unreadable
			}
		}
	}
	return m
}
