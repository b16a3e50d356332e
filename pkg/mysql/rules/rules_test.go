package rules

import (
	"net"
	"strings"
	"testing"
)

func mustParse(t *testing.T, name, body string) Rule {
	t.Helper()
	r, err := Parse(name, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{"match: {regexp: '(abc'}\n", "line 1 column 17: match.regexp: error parsing regexp"},
		{"match:\n  digest: xyz\n", "line 2 column 11: match.digest"},
		{"match: {client: 10.0.0.0/33}\n", "match.client"},
		{"destination: elsewhere\n", "line 1 column 14: destination"},
		{"timeout: soon\n", "timeout"},
		{"mirror: {upstream: x, sample: 2}\n", "mirror"},
		{"mtach: {user: a}\n", "field mtach not found"},
		{`{"rewrite": {"pattern": "", "replacement": "x"}}`, "rewrite.pattern"},
	} {
		if _, err := Parse("r", []byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v; want %q", tt.body, err, tt.want)
		}
	}
}

func TestEval(t *testing.T) {
	set, err := Build([]Rule{
		mustParse(t, "firewall", "order: 1\nmatch: {regexp: '(?i)^\\s*(drop|truncate)\\b', user: app}\nreject: {message: no}\n"),
		mustParse(t, "strip-hint", "order: 2\nmatch: {regexp: 'SQL_NO_CACHE '}\nrewrite: {pattern: 'SQL_NO_CACHE ', replacement: ''}\ncontinue: true\n"),
		mustParse(t, "reports", "order: 3\nmatch: {regexp: 'FROM report_', client: 10.0.0.0/8}\nupstream: db_reports\ntimeout: 2s\n"),
		mustParse(t, "never", "order: 4\nmatch: {regexp: '.'}\ndestination: primary\n"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := func(text, user, client string) Decision {
		return set.Eval(Query{Text: text, User: user, Client: net.ParseIP(client), Listener: "db"})
	}
	if d := q("TRUNCATE t", "app", "10.1.1.1"); d.Reject == nil || d.Reject.Code != 1148 || d.Reject.Message != "no" {
		t.Fatalf("firewall: %+v", d)
	}
	if d := q("TRUNCATE t", "admin", "10.1.1.1"); d.Reject != nil {
		t.Fatalf("firewall for another user: %+v", d)
	}
	d := q("SELECT SQL_NO_CACHE a FROM report_x", "app", "10.1.1.1")
	if d.Text != "SELECT a FROM report_x" || !d.Rewritten || d.Upstream != "db_reports" || d.Timeout.String() != "2s" || strings.Join(d.Rules, ",") != "strip-hint,reports" {
		t.Fatalf("rewrite then route: %+v", d)
	}
	if d := q("SELECT a FROM report_x", "app", "192.168.0.1"); d.Destination != "primary" || d.Upstream != "" {
		t.Fatalf("another client: %+v", d)
	}
	again, err := Build([]Rule{mustParse(t, "reports", "match: {regexp: 'x'}\ndestination: replica\n")}, set)
	if err != nil {
		t.Fatal(err)
	}
	if in := again.Infos(func(string) string { return "admin" }); len(in) != 1 || in[0].Hits != 1 {
		t.Fatalf("hits carried over: %+v", in)
	}
	digested := 0
	ds, _ := Build([]Rule{mustParse(t, "d", "match: {digest: 00000000000000ff}\ndestination: primary\n")}, nil)
	if d := ds.Eval(Query{Text: "x", Digest: func() uint64 { digested++; return 0xff }}); d.Destination != "primary" || digested != 1 {
		t.Fatalf("by digest: %+v %d", d, digested)
	}
}

// FuzzParse: any PUT rule body is a rule or an error, never a panic; a rule that parses builds
// into a set that evaluates any text.
func FuzzParse(f *testing.F) {
	f.Add([]byte("match: {regexp: 'x', client: 10.0.0.0/8, digest: 00000000000000ff}\nrewrite: {pattern: a, replacement: b}\ntimeout: 1s\n"))
	f.Add([]byte(`{"reject":{"code":1148},"continue":true,"mirror":{"upstream":"m","sample":0.5}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse("r", body)
		if err != nil {
			return
		}
		set, err := Build([]Rule{r}, nil)
		if err != nil {
			t.Fatalf("a parsed rule does not build: %v", err)
		}
		set.Eval(Query{Text: string(body), Client: net.ParseIP("10.1.2.3"), Digest: func() uint64 { return 0xff }})
	})
}
