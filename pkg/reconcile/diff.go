package reconcile

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/slardar-go/slardar/pkg/script"
)

// Explain fills every change's Diff from the values it would replace: for a put, the proxy's
// value (none when new) against what it would have after it, as indented JSON; for a code load,
// the md5 versions; for a delete, the value that goes.
func Explain(d Desired, a Actual, changes []Change) {
	for i, ch := range changes {
		var have, want []byte
		switch ch.Kind {
		case KindUpstream:
			have = a.Upstreams[ch.Name]
			if ch.Action != "delete" {
				want = wantUpstream(d.Upstreams[ch.Name], have)
			}
		case KindRoute, KindRule:
			have, want = a.Routes[ch.Name], d.Routes[ch.Name]
			if ch.Kind == KindRule {
				have, want = a.Rules[ch.Name], d.Rules[ch.Name]
			}
			if ch.Action == "delete" {
				want = nil
			}
		case KindUser: // passwords never printed: "(set)", or "(changed)" where they differ
			have = a.Users[ch.Name]
			if ch.Action != "delete" {
				want = hidePasswords(maskUser(d.Users[ch.Name], have), have)
			}
			have = hidePasswords(have, have)
		case KindCode:
			if v, ok := a.Code[ch.Name]; ok {
				have = []byte(`"md5 ` + v + `"`)
			}
			if ch.Action != "delete" {
				want = []byte(`"md5 ` + script.Version(d.Code[ch.Name]) + `"`)
			}
		}
		changes[i].Diff = lineDiff(indent(have), indent(want))
	}
}

func indent(b []byte) []string {
	if b == nil {
		return nil
	}
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		return strings.Split(string(b), "\n")
	}
	return strings.Split(buf.String(), "\n")
}

// lineDiff is the changed lines of a → b with one line of context around each change, "- " for
// a's, "+ " for b's, "  " for context and "  ..." for lines left out; "" when they are equal.
func lineDiff(a, b []string) string {
	// Longest common subsequence, from the ends: lcs[i][j] is its length for a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			lines = append(lines, line{' ', a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', a[i]})
			i++
		default:
			lines = append(lines, line{'+', b[j]})
			j++
		}
	}
	near := func(k int) bool {
		for d := -1; d <= 1; d++ {
			if k+d >= 0 && k+d < len(lines) && lines[k+d].op != ' ' {
				return true
			}
		}
		return false
	}
	var out strings.Builder
	changed, skipped := false, false
	for k, l := range lines {
		if l.op != ' ' {
			changed = true
		}
		if !near(k) {
			skipped = true
			continue
		}
		if skipped && out.Len() > 0 {
			out.WriteString("  ...\n")
		}
		skipped = false
		out.WriteByte(l.op)
		out.WriteByte(' ')
		out.WriteString(l.text)
		out.WriteByte('\n')
	}
	if !changed {
		return ""
	}
	return out.String()
}

// hidePasswords is user JSON b with its passwords replaced by "(set)" where they equal those
// of ref (both masked alike), else "(changed)".
func hidePasswords(b, ref []byte) []byte {
	var m, r map[string]any
	if b == nil || json.Unmarshal(b, &m) != nil {
		return b
	}
	json.Unmarshal(ref, &r)
	for _, f := range userPasswords {
		if v, ok := m[f]; ok {
			if r != nil && r[f] == v {
				m[f] = "(set)"
			} else {
				m[f] = "(changed)"
			}
		}
	}
	out, _ := json.Marshal(m)
	return out
}
