// Package rules is mysql-proxy's query rules (ProxySQL's mysql_query_rules), changed at run
// time: each rule matches statements by digest, a regular expression on the text, user, schema,
// client address and listener, and acts on them — run them on a named upstream, force the
// primary or a replica, reject them with an error, rewrite their text, bound their time, or
// mirror a sample of them to another upstream. Rules are tried in order (order, then name);
// the first that matches decides, unless it says continue.
package rules

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"
)

// Rule is one rule as written (config file, PUT rule NAME, a store's mysql_rules/NAME).
type Rule struct {
	Name  string `yaml:"name" json:"name"`
	Order int    `yaml:"order" json:"order"`
	Match Match  `yaml:"match" json:"match"`
	// Upstream runs the statement on this upstream's servers (outside a transaction and
	// state pinned to the primary), as the session's user with its schema and settings.
	Upstream string `yaml:"upstream" json:"upstream,omitempty"`
	// Destination forces the primary or a replica (a replica session stays read-only: a
	// write forced there is refused by the replica and runs on the primary, logged).
	Destination string   `yaml:"destination" json:"destination,omitempty"`
	Reject      *Reject  `yaml:"reject" json:"reject,omitempty"`
	Rewrite     *Rewrite `yaml:"rewrite" json:"rewrite,omitempty"`
	// Timeout stops the statement on its server (KILL QUERY) after this long: "2s", "500ms".
	Timeout  string  `yaml:"timeout" json:"timeout,omitempty"`
	Mirror   *Mirror `yaml:"mirror" json:"mirror,omitempty"`
	Continue bool    `yaml:"continue" json:"continue,omitempty"`
}

// Match says which statements a rule is for; every field given must hold.
type Match struct {
	Digest   string `yaml:"digest" json:"digest,omitempty"` // 16 hex digits (slardarctl mysql digest)
	Regexp   string `yaml:"regexp" json:"regexp,omitempty"` // RE2, on the text as the client sent it
	User     string `yaml:"user" json:"user,omitempty"`
	Schema   string `yaml:"schema" json:"schema,omitempty"`
	Client   string `yaml:"client" json:"client,omitempty"`     // an address or a CIDR block
	Listener string `yaml:"listener" json:"listener,omitempty"` // the listener's upstream name
}

// Reject answers with an error instead of running the statement (a SQL firewall).
type Reject struct {
	Code    int    `yaml:"code" json:"code,omitempty"`   // default 1148 (ER_NOT_ALLOWED_COMMAND)
	State   string `yaml:"state" json:"state,omitempty"` // default 42000
	Message string `yaml:"message" json:"message,omitempty"`
}

// Rewrite replaces what Pattern (RE2) matches with Replacement ($1 for a group).
type Rewrite struct {
	Pattern     string `yaml:"pattern" json:"pattern"`
	Replacement string `yaml:"replacement" json:"replacement"`
}

// Mirror sends a sample of the statements to another upstream too; its results are discarded
// and it never holds the client up (one that finds every mirror slot busy is not sent).
type Mirror struct {
	Upstream string  `yaml:"upstream" json:"upstream"`
	Sample   float64 `yaml:"sample" json:"sample,omitempty"` // share sent, in (0, 1]; default 1
}

// Parse reads a rule body (JSON or YAML) for name, strictly: an unknown field is an error
// with its line, and so is a field that does not compile (a regexp, a CIDR block, a timeout).
func Parse(name string, body []byte) (Rule, error) {
	var r Rule
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("rule %s: %v", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if r.Name != "" && r.Name != name {
		return r, fmt.Errorf("rule %s: name %q in the body", name, r.Name)
	}
	r.Name = name
	if _, err := compile(r); err != nil {
		if line, col, ok := position(body, err); ok {
			return r, fmt.Errorf("rule %s: line %d column %d: %w", name, line, col, err)
		}
		return r, fmt.Errorf("rule %s: %w", name, err)
	}
	return r, nil
}

// fieldError is an error about one field of a rule, by its key.
type fieldError struct {
	key string
	err error
}

func (e *fieldError) Error() string { return e.key + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// position is where, in a rule's body, the field an error is about is written.
func position(body []byte, err error) (line, col int, ok bool) {
	var fe *fieldError
	var doc yaml.Node
	if !errors.As(err, &fe) || yaml.Unmarshal(body, &doc) != nil || len(doc.Content) == 0 {
		return 0, 0, false
	}
	n := doc.Content[0]
	for _, k := range strings.Split(fe.key, ".") {
		found := false
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				line, col, n, found = n.Content[i+1].Line, n.Content[i+1].Column, n.Content[i+1], true
				break
			}
		}
		if !found {
			return 0, 0, false
		}
	}
	return line, col, true
}

// compiled is a rule ready to match, with its hit counter.
type compiled struct {
	Rule
	digest  uint64
	re, rw  *regexp.Regexp
	client  *net.IPNet
	timeout time.Duration
	hits    *atomic.Int64
}

func compile(r Rule) (*compiled, error) {
	c := &compiled{Rule: r, hits: new(atomic.Int64)}
	bad := func(key string, err error) (*compiled, error) { return nil, &fieldError{key, err} }
	var err error
	if m := r.Match.Digest; m != "" {
		if c.digest, err = strconv.ParseUint(m, 16, 64); err != nil || len(m) != 16 {
			return bad("match.digest", fmt.Errorf("%q: want 16 hex digits, as slardarctl mysql digest shows", m))
		}
	}
	if r.Match.Regexp != "" {
		if c.re, err = regexp.Compile(r.Match.Regexp); err != nil {
			return bad("match.regexp", err)
		}
	}
	if cl := r.Match.Client; cl != "" {
		if !strings.Contains(cl, "/") {
			if ip := net.ParseIP(cl); ip != nil {
				bits := 32
				if ip.To4() == nil {
					bits = 128
				}
				cl = fmt.Sprintf("%s/%d", cl, bits)
			}
		}
		if _, c.client, err = net.ParseCIDR(cl); err != nil {
			return bad("match.client", fmt.Errorf("%q: want an address or a CIDR block", r.Match.Client))
		}
	}
	switch r.Destination {
	case "", "primary", "replica":
	default:
		return bad("destination", fmt.Errorf("%q: want primary or replica", r.Destination))
	}
	if r.Upstream != "" && r.Destination != "" {
		return bad("destination", errors.New("a rule sends to an upstream or a destination, not both"))
	}
	if r.Rewrite != nil {
		if c.rw, err = regexp.Compile(r.Rewrite.Pattern); err != nil || r.Rewrite.Pattern == "" {
			if err == nil {
				err = errors.New("empty")
			}
			return bad("rewrite.pattern", err)
		}
	}
	if r.Timeout != "" {
		if c.timeout, err = time.ParseDuration(r.Timeout); err != nil || c.timeout <= 0 {
			return bad("timeout", fmt.Errorf("%q: want a positive duration (2s, 500ms)", r.Timeout))
		}
	}
	if m := r.Mirror; m != nil && (m.Upstream == "" || m.Sample < 0 || m.Sample > 1) {
		return bad("mirror", errors.New("want an upstream and a sample in (0, 1]"))
	}
	if rj := r.Reject; rj != nil && (rj.Code < 0 || rj.Code > 65535 || rj.State != "" && len(rj.State) != 5) {
		return bad("reject", errors.New("want a code in 0..65535 and a 5-character SQLSTATE"))
	}
	return c, nil
}

// Set is an ordered, compiled set of rules; nil or empty matches nothing. It is immutable:
// a change makes a new Set (Build), which keeps the hit counters of the rules it keeps.
type Set struct {
	rules      []*compiled
	needDigest bool
}

// Build compiles rules into a Set, ordered by order then name; old's hit counters carry over
// by name. It fails, naming the rule, if one does not compile.
func Build(rules []Rule, old *Set) (*Set, error) {
	hits := map[string]*atomic.Int64{}
	if old != nil {
		for _, c := range old.rules {
			hits[c.Name] = c.hits
		}
	}
	s := &Set{}
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Name == "" || seen[r.Name] {
			return nil, fmt.Errorf("rule %q: a rule needs a name of its own", r.Name)
		}
		seen[r.Name] = true
		c, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		if h := hits[r.Name]; h != nil {
			c.hits = h
		}
		s.needDigest = s.needDigest || c.Match.Digest != ""
		s.rules = append(s.rules, c)
	}
	slices.SortFunc(s.rules, func(a, b *compiled) int { return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Name, b.Name)) })
	return s, nil
}

// Len is how many rules there are.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Query is what rules match a statement by.
type Query struct {
	Text     string
	Digest   func() uint64 // the statement's digest id, computed when a rule needs it
	User     string
	Schema   string
	Client   net.IP
	Listener string
}

// Decision is what the matching rules say to do; the zero value runs the statement as usual.
type Decision struct {
	Text        string // the statement's text after rewrites (Query.Text when none)
	Rewritten   bool
	Upstream    string
	Destination string
	Reject      *Reject
	Timeout     time.Duration
	Mirror      *Mirror
	Rules       []string // the rules that matched, in order
}

// Eval runs q through the rules.
func (s *Set) Eval(q Query) Decision {
	d := Decision{Text: q.Text}
	if s == nil {
		return d
	}
	var digest uint64
	digested := false
	for _, c := range s.rules {
		m := c.Match
		if m.User != "" && m.User != q.User || m.Schema != "" && m.Schema != q.Schema || m.Listener != "" && m.Listener != q.Listener ||
			c.client != nil && (q.Client == nil || !c.client.Contains(q.Client)) {
			continue
		}
		if m.Digest != "" {
			if !digested && q.Digest != nil {
				digest, digested = q.Digest(), true
			}
			if digest != c.digest {
				continue
			}
		}
		if c.re != nil && !c.re.MatchString(d.Text) {
			continue
		}
		c.hits.Add(1)
		d.Rules = append(d.Rules, c.Name)
		if c.Reject != nil {
			rj := *c.Reject
			if rj.Code == 0 {
				rj.Code = 1148
			}
			if rj.State == "" {
				rj.State = "42000"
			}
			if rj.Message == "" {
				rj.Message = "statement refused by mysql-proxy rule " + c.Name
			}
			d.Reject = &rj
			return d
		}
		if c.rw != nil {
			if t := c.rw.ReplaceAllString(d.Text, c.Rewrite.Replacement); t != d.Text {
				d.Text, d.Rewritten = t, true
			}
		}
		if c.Upstream != "" {
			d.Upstream, d.Destination = c.Upstream, ""
		}
		if c.Destination != "" {
			d.Destination, d.Upstream = c.Destination, ""
		}
		if c.timeout > 0 {
			d.Timeout = c.timeout
		}
		if c.Mirror != nil && (c.Mirror.Sample == 0 || rand.Float64() < c.Mirror.Sample) {
			d.Mirror = c.Mirror
		}
		if !c.Continue {
			break
		}
	}
	return d
}

// Info is a rule with its hits, as GET rule info shows it.
type Info struct {
	Rule
	Source string `json:"source"` // config or admin
	Hits   int64  `json:"hits"`
}

// Infos are the rules in order with their hits; source names where each came from.
func (s *Set) Infos(source func(name string) string) []Info {
	if s == nil {
		return []Info{}
	}
	out := make([]Info, 0, len(s.rules))
	for _, c := range s.rules {
		out = append(out, Info{Rule: c.Rule, Source: source(c.Name), Hits: c.hits.Load()})
	}
	return out
}
