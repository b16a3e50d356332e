// Package reconcile makes proxies match a store: desired state (the store's keys) against actual
// state read back from each proxy over the admin protocol, applying only the difference.
package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/script"
	"github.com/slardar-go/slardar/pkg/sni"
	"github.com/slardar-go/slardar/pkg/store"
)

// Kinds of things reconciled, each an admin topic.
const (
	KindUpstream = "upstream"
	KindCode     = "code"
	KindRoute    = "route"
	KindUser     = "user"
	KindRule     = "rule"
)

// Problem is a store value that cannot be applied; it is reported and skipped.
type Problem struct {
	Key string `json:"key"`
	Err string `json:"error"`
}

// Desired is what the store says the proxies should have.
type Desired struct {
	Upstreams map[string][]byte // normalized upstream JSON ({"cluster":...} form)
	Code      map[string][]byte // Lua source
	Routes    map[string][]byte // normalized route JSON
	Users     map[string][]byte // normalized user JSON (mysql-proxy's PUT user body)
	Rules     map[string][]byte // normalized query rule JSON (mysql-proxy's PUT rule body)
	Problems  []Problem

	// short are the upstreams in the short form, and compared the comparisons of those already
	// made (want and a proxy's value → equal): a short form is compared by applying it over
	// the proxy's upstream, which costs a parse and a merge, and a snapshot is planned against
	// every target again and again with mostly the same values.
	short    map[string]bool
	compared *sync.Map
}

// sameUpstream reports whether a proxy that has have (normalized) has the upstream n wants.
func (d Desired) sameUpstream(n string, have []byte) bool {
	want := d.Upstreams[n]
	if d.short == nil { // a Desired not made by ParseSnapshot
		return sameUpstream(wantUpstream(want, have), have)
	}
	if !d.short[n] {
		return sameUpstream(want, have)
	}
	key := string(want) + "\x00" + string(have)
	if v, ok := d.compared.Load(key); ok {
		return v.(bool)
	}
	same := sameUpstream(wantUpstream(want, have), have)
	d.compared.Store(key, same)
	return same
}

// NormalizeUser checks a mysql_users/NAME value and writes it back in the one form compared
// and sent (config.NormalizeUser: the user's model is the config file's).
type NormalizeUser func(name string, body []byte) ([]byte, error)

// ParseSnapshot reads the layout out of a store snapshot. Invalid values (bad JSON, a script
// that does not compile) become Problems; the valid ones are kept.
func ParseSnapshot(prefix string, kv map[string][]byte, users NormalizeUser) Desired {
	d := Desired{Upstreams: map[string][]byte{}, Code: map[string][]byte{}, Routes: map[string][]byte{}, Users: map[string][]byte{}, Rules: map[string][]byte{},
		short: map[string]bool{}, compared: &sync.Map{}}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		kind, name, _ := strings.Cut(rest, "/")
		if name == "" || strings.Contains(name, "/") {
			continue // not part of the layout (lazy config keys, nested folders)
		}
		val := kv[key]
		var err error
		switch kind + "/" {
		case store.Upstreams:
			var b []byte
			if b, err = NormalizeUpstream(val); err == nil {
				d.Upstreams[name], d.short[name] = b, checkups.IsShort(b)
			} else if line, col, ok := checkups.Position(val, err.Error()); ok {
				err = fmt.Errorf("line %d column %d: %w", line, col, err)
			}
		case store.Code:
			if name == "version" {
				continue
			}
			if _, err = script.Compile(name, val); err == nil {
				d.Code[name] = val
			}
		case store.Routes:
			var b []byte
			if b, err = NormalizeRoute(val); err == nil {
				d.Routes[name] = b
			}
		case store.Users:
			var b []byte
			if b, err = users(name, val); err == nil {
				d.Users[name] = b
			}
		case store.Rules:
			var b []byte
			if b, err = NormalizeRule(name, val); err == nil {
				d.Rules[name] = b
			}
		default:
			continue
		}
		if err != nil {
			d.Problems = append(d.Problems, Problem{Key: key, Err: err.Error()})
		}
	}
	return d
}

// NormalizeUpstream parses a store's upstream (an unknown field is an error) and writes it back
// compact: the full form as the proxies echo it in GET upstream info, so the two compare byte
// for byte, or the short form {"servers":[...], ...} as a short form. A short form means what it
// means over the admin protocol (checkups.ApplyShort): the proxy keeps what it does not name, so
// it can only be compared with (and is sent to) each proxy's own upstream.
func NormalizeUpstream(b []byte) ([]byte, error) {
	if !checkups.IsShort(b) {
		return normalizeUpstream(b, checkups.ParseUpstreamStrict)
	}
	up, err := checkups.ApplyShort(nil, b, true)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	if fields["servers"], err = json.Marshal(up.Cluster.Levels[0].Servers); err != nil {
		return nil, err
	}
	return json.Marshal(fields) // sorted keys, compact values
}

// NormalizeRule checks a store's mysql_rules/NAME value (rules.Parse: it must compile) and
// writes it back as the JSON a proxy's GET rule info shows it in.
func NormalizeRule(name string, body []byte) ([]byte, error) {
	r, err := rules.Parse(name, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// wantUpstream is the upstream a proxy that has have (normalized; nil for none) should have
// for the store's normalized want: want itself, or a short form applied over have.
func wantUpstream(want, have []byte) []byte {
	if !checkups.IsShort(want) {
		return want
	}
	var old *checkups.Upstream
	if have != nil {
		old, _ = checkups.ParseUpstream(have) // one that does not parse: as if there were none
	}
	up, err := checkups.ApplyShort(old, want, false)
	if err != nil {
		return want
	}
	b, err := json.Marshal(up)
	if err != nil {
		return want
	}
	return b
}

// normalizeEcho is NormalizeUpstream for what a proxy echoes: a proxy of another version may
// know fields this one does not.
func normalizeEcho(b []byte) ([]byte, error) { return normalizeUpstream(b, checkups.ParseUpstream) }

func normalizeUpstream(b []byte, parse func([]byte) (*checkups.Upstream, error)) ([]byte, error) {
	up, err := parse(b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(up)
}

// NormalizeRoute parses and re-marshals a route.
func NormalizeRoute(b []byte) ([]byte, error) {
	r, err := sni.ParseRoute(b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// Actual is what a proxy has, as far as reading it back can see.
type Actual struct {
	Instance  string            // the proxy's instance_id (start_time for older proxies): which life of it this is
	Upstreams map[string][]byte // normalized
	Code      map[string]string // md5 versions; nil when the proxy has no code topic
	Routes    map[string][]byte // normalized; nil when the proxy has no route topic
	Users     map[string][]byte // the users PUT over the admin protocol (passwords masked); nil without a user topic
	Rules     map[string][]byte // the query rules PUT over the admin protocol, normalized; nil without a rule topic
}

// Change is one admin command of a plan.
type Change struct {
	Kind   string `json:"kind"` // upstream, code, route
	Name   string `json:"name"`
	Action string `json:"action"` // put, load, delete
	// Diff is what the change would do, for a dry run (Explain): the proxy's value against the
	// store's, line by line ("- " the proxy's, "+ " the store's).
	Diff string `json:"diff,omitempty"`
}

func (c Change) String() string { return fmt.Sprintf("%s %s %s", c.Action, c.Kind, c.Name) }

// Owned says which names reconciling may delete: names it has seen in the store. Without prune,
// what the proxy has from elsewhere (its config file, an operator) is left alone.
type Owned map[string]map[string]bool

func (o Owned) add(d Desired) {
	for kind, m := range map[string]map[string][]byte{KindUpstream: d.Upstreams, KindCode: d.Code, KindRoute: d.Routes, KindUser: d.Users, KindRule: d.Rules} {
		if o[kind] == nil {
			o[kind] = map[string]bool{}
		}
		for name := range m {
			o[kind][name] = true
		}
	}
}

// Plan lists the changes that make actual equal desired: put what differs, delete what the
// store no longer has (only names it had, unless prune).
func Plan(d Desired, a Actual, owned Owned, prune bool) []Change {
	var out []Change
	diff := func(kind, put string, want map[string][]byte, have map[string][]byte, same func(name string) bool) {
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if _, ok := have[name]; !ok || !same(name) {
				out = append(out, Change{Kind: kind, Name: name, Action: put})
			}
		}
		for _, name := range slices.Sorted(maps.Keys(have)) {
			if _, ok := want[name]; !ok && (prune || owned[kind][name]) {
				out = append(out, Change{Kind: kind, Name: name, Action: "delete"})
			}
		}
	}
	diff(KindUpstream, "put", d.Upstreams, a.Upstreams, func(n string) bool { return d.sameUpstream(n, a.Upstreams[n]) })
	if a.Code != nil {
		have := make(map[string][]byte, len(a.Code))
		for n, v := range a.Code {
			have[n] = []byte(v)
		}
		diff(KindCode, "load", d.Code, have, func(n string) bool { return script.Version(d.Code[n]) == a.Code[n] })
	}
	if a.Routes != nil {
		diff(KindRoute, "put", d.Routes, a.Routes, func(n string) bool { return bytes.Equal(d.Routes[n], a.Routes[n]) })
	}
	if a.Users != nil {
		diff(KindUser, "put", d.Users, a.Users, func(n string) bool { return bytes.Equal(maskUser(d.Users[n], a.Users[n]), a.Users[n]) })
	}
	if a.Rules != nil {
		diff(KindRule, "put", d.Rules, a.Rules, func(n string) bool { return bytes.Equal(d.Rules[n], a.Rules[n]) })
	}
	return out
}

// userPasswords are the fields of a user a proxy masks.
var userPasswords = []string{"password", "backend_password"}

// maskUser is the desired user want with its passwords masked as the proxy's have masks
// them (the same salt), so an unchanged user compares equal and a changed password does not.
func maskUser(want, have []byte) []byte {
	var w, h map[string]any
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(have, &h) != nil {
		return want
	}
	for _, f := range userPasswords {
		hp, _ := h[f].(string)
		wp, _ := w[f].(string)
		if salt, ok := checkups.MaskedSalt(hp); ok && wp != "" {
			w[f] = checkups.MaskPass(wp, salt)
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return want
	}
	return b
}

// sameUpstream compares a desired upstream with a proxy's, both normalized. A proxy masks
// heartbeat passwords for clients that did not authenticate (checkups.MaskPass); the desired
// password is then masked with the same salt before comparing, so a changed password is still
// seen.
func sameUpstream(want, have []byte) bool {
	if bytes.Equal(want, have) {
		return true
	}
	var h, w checkups.Upstream
	if json.Unmarshal(have, &h) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	salt, masked := checkups.MaskedSalt(h.Pass)
	if !masked || w.Pass == "" {
		return false
	}
	w.Pass = checkups.MaskPass(w.Pass, salt)
	b, err := json.Marshal(&w)
	return err == nil && bytes.Equal(b, have)
}

// Add records the names of a desired state as owned.
func (o Owned) Add(d Desired) { o.add(d) }

// Clone copies the ownership sets.
func (o Owned) Clone() Owned {
	out := make(Owned, len(o))
	for kind, names := range o {
		out[kind] = make(map[string]bool, len(names))
		for n := range names {
			out[kind][n] = true
		}
	}
	return out
}
