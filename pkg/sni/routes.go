package sni

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// DefaultPattern names the route for names no other route matches.
const DefaultPattern = "default"

// Route is where connections for a pattern go: a checkups upstream, or a target address
// template such as "$sni:443", "${1}.internal:8443" or "$sni:$server_port".
type Route struct {
	Upstream      string    `json:"upstream,omitempty"`
	Target        string    `json:"target,omitempty"`
	ALPN          ALPNMatch `json:"alpn,omitempty"`           // only when the client offers one of these
	ProxyProtocol int       `json:"proxy_protocol,omitempty"` // 1 or 2: send a PROXY header
}

// ALPNMatch is a list of protocols; JSON accepts a string or an array.
type ALPNMatch []string

// UnmarshalJSON accepts "h2" or ["h2","http/1.1"].
func (a *ALPNMatch) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = ALPNMatch{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("alpn: want a string or an array of strings")
	}
	*a = many
	return nil
}

// ParseRoute reads a route body: {"upstream":...} or {"target":...}, optional "alpn" and
// "proxy_protocol".
func ParseRoute(body []byte) (Route, error) {
	var r Route
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Route{}, fmt.Errorf("invalid body: %v", err)
	}
	return r, r.validate()
}

func (r Route) validate() error {
	if (r.Upstream == "") == (r.Target == "") {
		return fmt.Errorf("route needs exactly one of upstream and target")
	}
	if r.ProxyProtocol != 0 && r.ProxyProtocol != 1 && r.ProxyProtocol != 2 {
		return fmt.Errorf("proxy_protocol %d: want 1 or 2", r.ProxyProtocol)
	}
	if r.Target != "" {
		if _, _, err := net.SplitHostPort(r.Target); err != nil {
			return fmt.Errorf("target %q: want HOST:PORT, e.g. $sni:443", r.Target)
		}
	}
	return nil
}

// pattern is a compiled route pattern.
type pattern struct {
	text  string
	kind  byte // 'e'xact, 'w'ildcard, 'r'egexp, 'd'efault
	key   string
	re    *regexp.Regexp
	route Route
}

// compilePattern reads "default", "*.example.com" (exactly one label in place of the star),
// "~regexp" (matched against the whole name, captures usable in the target) or an exact name.
func compilePattern(text string) (pattern, error) {
	switch {
	case text == DefaultPattern:
		return pattern{text: text, kind: 'd'}, nil
	case strings.HasPrefix(text, "~"):
		re, err := regexp.Compile(`^(?:` + text[1:] + `)$`)
		if err != nil {
			return pattern{}, fmt.Errorf("route pattern %q: %v", text, err)
		}
		return pattern{text: text, kind: 'r', re: re}, nil
	case strings.HasPrefix(text, "*."):
		suffix := strings.ToLower(text[2:])
		if suffix == "" || strings.Contains(suffix, "*") || !validName(suffix) {
			return pattern{}, fmt.Errorf("route pattern %q: a wildcard is *.domain", text)
		}
		return pattern{text: text, kind: 'w', key: suffix}, nil
	}
	name := strings.ToLower(text)
	if name == "" || !validName(name) {
		return pattern{}, fmt.Errorf("route pattern %q: want a host name, *.domain, ~regexp or default", text)
	}
	return pattern{text: text, kind: 'e', key: name}, nil
}

// Table is the routing table, safe for concurrent use.
type Table struct {
	mu      sync.RWMutex
	exact   map[string]*pattern
	wild    map[string]*pattern
	regexps []*pattern // sorted by pattern text
	def     *pattern
	allow   *AllowList // targets that may be dialled; none by default (never an open proxy)
}

// SetAllow replaces the target allow-list.
func (t *Table) SetAllow(a *AllowList) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.allow = a
}

// Allows reports whether an expanded target may be dialled.
func (t *Table) Allows(hostport string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.allow != nil && t.allow.Allows(hostport)
}

// Put adds or replaces the route of a pattern.
func (t *Table) Put(text string, r Route) error {
	if err := r.validate(); err != nil {
		return err
	}
	p, err := compilePattern(text)
	if err != nil {
		return err
	}
	p.route = r
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Target != "" && (t.allow == nil || t.allow.Len() == 0) {
		return fmt.Errorf("target routes need an allow-list (sni.allow in the config): the router is never an open proxy")
	}
	if r.Target != "" && !strings.Contains(r.Target, "$") && !t.allow.Allows(r.Target) {
		return fmt.Errorf("target %s is not in the allow-list (sni.allow)", r.Target)
	}
	t.remove(text)
	switch p.kind {
	case 'd':
		t.def = &p
	case 'e':
		t.init()
		t.exact[p.key] = &p
	case 'w':
		t.init()
		t.wild[p.key] = &p
	case 'r':
		t.regexps = append(t.regexps, &p)
		sort.Slice(t.regexps, func(i, j int) bool { return t.regexps[i].text < t.regexps[j].text })
	}
	return nil
}

func (t *Table) init() {
	if t.exact == nil {
		t.exact = make(map[string]*pattern)
		t.wild = make(map[string]*pattern)
	}
}

// remove deletes a pattern's route; it reports whether there was one. t.mu is held.
func (t *Table) remove(text string) bool {
	p, err := compilePattern(text)
	if err != nil {
		return false
	}
	switch p.kind {
	case 'd':
		had := t.def != nil
		t.def = nil
		return had
	case 'e':
		_, had := t.exact[p.key]
		delete(t.exact, p.key)
		return had
	case 'w':
		_, had := t.wild[p.key]
		delete(t.wild, p.key)
		return had
	}
	n := len(t.regexps)
	t.regexps = slices.DeleteFunc(t.regexps, func(q *pattern) bool { return q.text == text })
	return len(t.regexps) != n
}

// Delete removes a pattern's route.
func (t *Table) Delete(text string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.remove(text) {
		return fmt.Errorf("route %s not found", text)
	}
	return nil
}

// Info lists the routes by pattern.
func (t *Table) Info() map[string]Route {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string]Route)
	for _, m := range []map[string]*pattern{t.exact, t.wild} {
		for _, p := range m {
			out[p.text] = p.route
		}
	}
	for _, p := range t.regexps {
		out[p.text] = p.route
	}
	if t.def != nil {
		out[DefaultPattern] = t.def.route
	}
	return out
}

// Match is a routing decision.
type Match struct {
	Pattern string
	Route   Route
	Target  string // the expanded target, for target routes
}

// Lookup finds the route for a hello on a listener port: exact name, then the one-label
// wildcard, then regexps in pattern order, then default; a route with an ALPN list matches only
// when the client offers one of those protocols. ok is false when nothing matches.
func (t *Table) Lookup(h Hello, port string) (Match, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	name := h.ServerName
	try := func(p *pattern, groups []string) (Match, bool) {
		if p == nil || !alpnOK(p.route.ALPN, h.ALPN) {
			return Match{}, false
		}
		m := Match{Pattern: p.text, Route: p.route}
		if p.route.Target != "" {
			m.Target = expand(p.route.Target, name, port, groups)
		}
		return m, true
	}
	if name != "" {
		if m, ok := try(t.exact[name], nil); ok {
			return m, true
		}
		if _, rest, found := strings.Cut(name, "."); found {
			if m, ok := try(t.wild[rest], nil); ok {
				return m, true
			}
		}
		for _, p := range t.regexps {
			if groups := p.re.FindStringSubmatch(name); groups != nil {
				if m, ok := try(p, groups); ok {
					return m, true
				}
			}
		}
	}
	return try(t.def, nil)
}

func alpnOK(want, offered []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if slices.Contains(offered, w) {
			return true
		}
	}
	return false
}

var captureRef = regexp.MustCompile(`\$\{?([0-9])\}?`)

// expand fills a target template: $sni (or ${sni}) is the server name, $server_port the
// listener's port, $1..$9 (or ${1}) the regexp's captures.
func expand(tmpl, name, port string, groups []string) string {
	r := strings.NewReplacer("${sni}", name, "$sni", name, "${server_port}", port, "$server_port", port)
	out := r.Replace(tmpl)
	return captureRef.ReplaceAllStringFunc(out, func(ref string) string {
		n, _ := strconv.Atoi(captureRef.FindStringSubmatch(ref)[1])
		if n < len(groups) {
			return groups[n]
		}
		return ""
	})
}
