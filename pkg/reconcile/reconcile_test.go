package reconcile

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
)

func TestParseAndPlan(t *testing.T) {
	d := ParseSnapshot("p/", map[string][]byte{
		"p/upstreams_stream/a":         []byte(`{"servers":[{"host":"h","port":1}]}`),
		"p/upstreams_stream/bad":       []byte(`{`),
		"p/upstreams_stream/typo":      []byte(`{"servers":[{"host":"h","port":1,"wieght":2}]}`),
		"p/lua_stream/m":               []byte(`return {}`),
		"p/lua_stream/version":         []byte(`42`),
		"p/lua_stream/broken":          []byte(`x = = 1`),
		"p/routes/*.example.com":       []byte(`{"upstream":"a"}`),
		"p/other":                      []byte(`ignored`),
		"p/upstreams_stream/x/y":       []byte(`nested: ignored`),
		"elsewhere/upstreams_stream/z": []byte(`{}`),
	}, config.NormalizeUser)
	if len(d.Upstreams) != 1 || len(d.Code) != 1 || len(d.Routes) != 1 || len(d.Problems) != 3 {
		t.Fatalf("parsed %d upstreams, %d code, %d routes, problems %v", len(d.Upstreams), len(d.Code), len(d.Routes), d.Problems)
	}
	if !strings.Contains(fmt.Sprint(d.Problems), `line 1 column 34: server 1: unknown field "wieght"`) {
		t.Fatalf("a store value with an unknown field: %v", d.Problems)
	}
	if string(d.Upstreams["a"]) != `{"servers":[{"host":"h","port":1,"weight":1,"max_fails":0,"fail_timeout":10}]}` {
		t.Fatalf("not normalized: %s", d.Upstreams["a"])
	}
	actual := Actual{
		Upstreams: map[string][]byte{"a": wantUpstream(d.Upstreams["a"], nil), "from-config": []byte(`{}`), "old": []byte(`{}`)},
		Code:      map[string]string{"m": "stale"},
	}
	owned := Owned{KindUpstream: {"old": true}}
	got := Plan(d, actual, owned, false)
	want := "delete upstream old|load code m" // routes: the proxy has no route topic
	var names []string
	for _, c := range got {
		names = append(names, c.String())
	}
	if strings.Join(names, "|") != want {
		t.Fatalf("plan %q; want %q", names, want)
	}
	if got := Plan(d, actual, Owned{}, true); len(got) != 3 {
		t.Fatalf("prune plan: %v", got)
	}
}

// FuzzParseSnapshot: store keys and values of any shape never panic; whatever is kept
// re-normalizes to itself.
func FuzzParseSnapshot(f *testing.F) {
	f.Add("p/upstreams_stream/a", []byte(`{"servers":[{"host":"h","port":1}]}`))
	f.Add("p/routes/~(.+)", []byte(`{"target":"$1:443","alpn":"h2"}`))
	f.Add("p/lua_stream/m", []byte(`return 1`))
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		d := ParseSnapshot("p/", map[string][]byte{key: val}, config.NormalizeUser)
		for _, b := range d.Upstreams {
			again, err := NormalizeUpstream(b)
			if err != nil || string(again) != string(b) {
				t.Fatalf("upstream %s does not re-normalize: %s %v", b, again, err)
			}
		}
		for _, b := range d.Routes {
			again, err := NormalizeRoute(b)
			if err != nil || string(again) != string(b) {
				t.Fatalf("route %s does not re-normalize: %s %v", b, again, err)
			}
		}
	})
}

// A proxy masks heartbeat passwords for clients that did not authenticate: store-sync still
// sees an equal upstream as equal (no churn) and a changed password as a change.
func TestPlanMaskedPasswords(t *testing.T) {
	want, err := NormalizeUpstream([]byte(`{"typ":"mysql","user":"u","pass":"s3cret","cluster":[{"servers":[{"host":"db","port":3306}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	masked := func(pass string) []byte {
		up, _ := checkups.ParseUpstream(want)
		up.Pass = pass
		ups := checkups.MaskPasswords(map[string]*checkups.Upstream{"db": up})
		b, _ := json.Marshal(ups["db"])
		return b
	}
	d := Desired{Upstreams: map[string][]byte{"db": want}}
	if ch := Plan(d, Actual{Upstreams: map[string][]byte{"db": masked("s3cret")}}, Owned{}, false); len(ch) != 0 {
		t.Fatalf("same password, masked: %v", ch)
	}
	if ch := Plan(d, Actual{Upstreams: map[string][]byte{"db": masked("old")}}, Owned{}, false); len(ch) != 1 || ch[0].Action != "put" {
		t.Fatalf("changed password, masked: %v", ch)
	}
}

// TestShortFormKeepsTheRest: a store's {"servers":[...]} means what it means over the admin
// protocol: a proxy whose upstream has those servers (and an http check the store does not
// name) is in sync; one with other servers gets the short form, which keeps its check; the dry
// run's diff shows only the servers.
func TestShortFormKeepsTheRest(t *testing.T) {
	d := ParseSnapshot("p/", map[string][]byte{"p/upstreams_stream/web": []byte(`{"servers":[{"host":"h","port":2}]}`)}, config.NormalizeUser)
	full := func(port int) []byte {
		b, err := NormalizeUpstream([]byte(fmt.Sprintf(`{"typ":"http","http_opts":{"query":"GET / HTTP/1.0\r\n\r\n"},"cluster":[{"servers":[{"host":"h","port":%d}]}]}`, port)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if ch := Plan(d, Actual{Upstreams: map[string][]byte{"web": full(2)}}, Owned{}, false); len(ch) != 0 {
		t.Fatalf("in sync, yet: %v", ch)
	}
	a := Actual{Upstreams: map[string][]byte{"web": full(1)}}
	ch := Plan(d, a, Owned{}, false)
	if len(ch) != 1 || ch[0].Action != "put" {
		t.Fatalf("plan: %v", ch)
	}
	r := &checkups.Registry{}
	if err := r.PutJSON("web", full(1)); err != nil {
		t.Fatal(err)
	}
	if err := r.PutJSON("web", d.Upstreams["web"]); err != nil { // what Apply sends
		t.Fatal(err)
	}
	if up := r.Get("web"); up.Typ != "http" || up.HTTPOpts == nil || up.Cluster.Levels[0].Servers[0].Port != 2 {
		t.Fatalf("after the put: %+v", up)
	}
	Explain(d, a, ch)
	if !regexp.MustCompile(`^ +"host": "h",\n- +"port": 1,\n\+ +"port": 2,\n +"weight": 1,\n$`).MatchString(ch[0].Diff) {
		t.Fatalf("diff:\n%s", ch[0].Diff)
	}
}

// TestUsers: a store user equal to the proxy's (whose passwords it masks) is in sync; a changed
// password is a put; the config file's users are not the store's; a dry run never prints a
// password.
func TestUsers(t *testing.T) {
	d := ParseSnapshot("p/", map[string][]byte{
		"p/mysql_users/app": []byte(`{"password":"s3cret","schema":"upyun"}`),
		"p/mysql_users/bad": []byte(`{"password":"x","auth":"plain"}`),
	}, config.NormalizeUser)
	if len(d.Users) != 1 || len(d.Problems) != 1 || !strings.Contains(d.Problems[0].Err, `auth "plain"`) {
		t.Fatalf("users %v problems %v", d.Users, d.Problems)
	}
	info := func(pass string) []byte {
		return []byte(fmt.Sprintf(`{"app":{"source":"admin","password":%q,"schema":"upyun"},"runner":{"source":"config","password":%q}}`,
			checkups.MaskPass(pass, "salt"), checkups.MaskPass("x", "salt")))
	}
	for _, tt := range []struct {
		pass string
		want int
	}{{"s3cret", 0}, {"old", 1}} {
		users, err := adminUsers(info(tt.pass))
		if err != nil || len(users) != 1 {
			t.Fatalf("admin users: %v %v", users, err)
		}
		a := Actual{Upstreams: map[string][]byte{}, Users: users}
		ch := Plan(d, a, Owned{}, true)
		if len(ch) != tt.want {
			t.Fatalf("proxy password %q: plan %v", tt.pass, ch)
		}
		Explain(d, a, ch)
		for _, c := range ch {
			if strings.Contains(c.Diff, "s3cret") || !strings.Contains(c.Diff, `"password": "(changed)"`) {
				t.Fatalf("diff:\n%s", c.Diff)
			}
		}
	}
}
