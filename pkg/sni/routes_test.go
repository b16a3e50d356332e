package sni

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	allow, err := ParseAllowList([]string{"*.internal:8443", "*.example.com:443", "~^db[0-9]\\.svc:5432$"})
	if err != nil {
		t.Fatal(err)
	}
	tab := &Table{}
	tab.SetAllow(allow)
	for pattern, body := range map[string]string{
		"www.example.com":     `{"upstream":"web"}`,
		"*.example.com":       `{"upstream":"wild","proxy_protocol":2}`,
		"~(.+)\\.svc\\.io":    `{"target":"${1}.internal:8443"}`,
		"h2.example.org":      `{"upstream":"h2only","alpn":"h2"}`,
		"~.*\\.example\\.org": `{"target":"$sni:$server_port"}`,
		"default":             `{"upstream":"fallback"}`,
	} {
		r, err := ParseRoute([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := tab.Put(pattern, r); err != nil {
			t.Fatal(pattern, err)
		}
	}
	tests := []struct {
		name, alpn string
		pattern    string
		upstream   string
		target     string
	}{
		{name: "www.example.com", pattern: "www.example.com", upstream: "web"},
		{name: "api.example.com", pattern: "*.example.com", upstream: "wild"},
		{name: "a.b.example.com", pattern: "default", upstream: "fallback"}, // one label only
		{name: "example.com", pattern: "default", upstream: "fallback"},
		{name: "billing.svc.io", pattern: "~(.+)\\.svc\\.io", target: "billing.internal:8443"},
		{name: "h2.example.org", alpn: "h2", pattern: "h2.example.org", upstream: "h2only"},
		{name: "h2.example.org", alpn: "http/1.1", pattern: "~.*\\.example\\.org", target: "h2.example.org:443"},
		{name: "", pattern: "default", upstream: "fallback"},
	}
	for _, tt := range tests {
		h := Hello{ServerName: tt.name}
		if tt.alpn != "" {
			h.ALPN = []string{tt.alpn}
		}
		m, ok := tab.Lookup(h, "443")
		if !ok || m.Pattern != tt.pattern || m.Route.Upstream != tt.upstream || m.Target != tt.target {
			t.Errorf("%s/%s: got %+v %v; want %s %s %s", tt.name, tt.alpn, m, ok, tt.pattern, tt.upstream, tt.target)
		}
	}
	if err := tab.Delete("default"); err != nil {
		t.Fatal(err)
	}
	if _, ok := tab.Lookup(Hello{ServerName: "nothing.test"}, "443"); ok {
		t.Fatal("matched without a default")
	}
	if err := tab.Delete("default"); err == nil || err.Error() != "route default not found" {
		t.Fatalf("delete twice: %v", err)
	}
	for _, target := range []string{"x.internal:8443", "db1.svc:5432", "a.b.example.com:443"} {
		if !allow.Allows(target) {
			t.Errorf("%s refused", target)
		}
	}
	for _, target := range []string{"internal:8443", "x.internal:22", "10.0.0.1:8443", "db12.svc:5432", "evil.com:443"} {
		if allow.Allows(target) {
			t.Errorf("%s allowed", target)
		}
	}
}

func TestRouteErrors(t *testing.T) {
	tab := &Table{}
	tests := []struct {
		pattern, body, want string
	}{
		{"a.example.com", `{"target":"$sni:443"}`, "target routes need an allow-list"},
		{"a.example.com", `{}`, "exactly one of upstream and target"},
		{"a.example.com", `{"upstream":"x","target":"y:1"}`, "exactly one of upstream and target"},
		{"a.example.com", `{"upstream":"x","proxy_protocol":3}`, "proxy_protocol 3"},
		{"a.example.com", `{"upstream":"x","bogus":1}`, "invalid body"},
		{"~(", `{"upstream":"x"}`, "route pattern"},
		{"*.", `{"upstream":"x"}`, "a wildcard is *.domain"},
		{"a b", `{"upstream":"x"}`, "want a host name"},
	}
	for _, tt := range tests {
		r, err := ParseRoute([]byte(tt.body))
		if err == nil {
			err = tab.Put(tt.pattern, r)
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: %v; want %q", tt.pattern, tt.body, err, tt.want)
		}
	}
}
