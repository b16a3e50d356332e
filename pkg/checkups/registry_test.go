package checkups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func mustPut(t *testing.T, r *Registry, name, body string) {
	t.Helper()
	if err := r.PutJSON(name, []byte(body)); err != nil {
		t.Fatalf("PutJSON(%s): %v", body, err)
	}
}

func TestPutValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "not an object", body: `[1]`, want: "invalid body"},
		{name: "not json", body: `{`, want: "invalid body"},
		{name: "neither servers nor cluster", body: `{"mode":"hash"}`, want: "invalid body"},
		{name: "cluster a string", body: `{"cluster":"x"}`, want: "cluster invalid"},
		{name: "empty level", body: `{"cluster":[{}]}`, want: "can not update empty level"},
		{name: "level without servers", body: `{"cluster":[{"x":1}]}`, want: "servers invalid"},
		{name: "empty servers", body: `{"servers":[]}`, want: "servers invalid"},
		{name: "server without port", body: `{"servers":[{"host":"a"}]}`, want: "no server.host nor server.port found"},
		{name: "port out of range", body: `{"servers":[{"host":"a","port":70000}]}`, want: "server 1: port must be an integer in 1..65535, got 70000"},
		{name: "bad mode", body: `{"mode":"random","cluster":[{"servers":[{"host":"a","port":1}]}]}`, want: `mode invalid: "random"`},
		{name: "bad timeout", body: `{"timeout":"x","cluster":[{"servers":[{"host":"a","port":1}]}]}`, want: `timeout: want a duration (2s, 500ms) or a number of seconds, got "x"`},
		{name: "bad field type", body: `{"try":"x","cluster":[{"servers":[{"host":"a","port":1}]}]}`, want: "upstream field: try must be a number, got string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Registry{}).PutJSON("u", []byte(tt.body))
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.HasPrefix(ve.Msg, tt.want) {
				t.Fatalf("got %v; want %q", err, tt.want)
			}
		})
	}
	if err := (&Registry{}).Delete("x"); err == nil || err.Error() != "upstream x not found" {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestPutSemantics(t *testing.T) {
	r := &Registry{}
	mustPut(t, r, "3131", `{"typ":"mysql","mode":"ip_hash","cluster":{"b":{"servers":[{"host":"h2","port":2}]},"a":{"servers":[{"host":"h1","port":1}]}}}`)
	up := r.Get("3131")
	if !up.Cluster.Named || up.Cluster.Levels[0].Name != "a" || up.Typ != "mysql" {
		t.Fatalf("named cluster: %+v", up)
	}
	// servers replaces level 1 only; stored fields the body does not name are kept.
	mustPut(t, r, "3131", `{"servers":[{"host":"h3","port":3,"weight":2}]}`)
	up = r.Get("3131")
	if up.Mode != "ip_hash" || up.Typ != "mysql" || up.Cluster.Levels[0].Servers[0].Host != "h3" || up.Cluster.Levels[1].Servers[0].Host != "h2" {
		t.Fatalf("servers put: %+v", up)
	}
	// Fields the body names replace the stored ones (the original's HTTP path and
	// update_upstream; its 1895 path dropped them: one meaning everywhere now).
	mustPut(t, r, "3131", `{"mode":"rr","servers":[{"host":"h3","port":3,"weight":2}]}`)
	up = r.Get("3131")
	if up.Mode != "rr" || up.Typ != "mysql" || !up.Cluster.Named || up.Cluster.Levels[1].Servers[0].Host != "h2" {
		t.Fatalf("servers put with a field: %+v", up)
	}
	// servers on a new upstream creates it with that one level.
	mustPut(t, r, "new", `{"servers":[{"host":"h","port":1}]}`)
	// cluster replaces everything.
	mustPut(t, r, "3131", `{"cluster":[{"servers":[{"host":"h9","port":9}]}]}`)
	info, _ := json.Marshal(r.Info())
	want := `{"3131":{"cluster":[{"servers":[{"host":"h9","port":9,"weight":1,"max_fails":0,"fail_timeout":10}]}]},"new":{"cluster":[{"servers":[{"host":"h","port":1,"weight":1,"max_fails":0,"fail_timeout":10}]}]}}`
	if string(info) != want {
		t.Fatalf("info:\n got %s\nwant %s", info, want)
	}
	if v := r.Version(); v != 5 {
		t.Fatalf("version %d; want 5", v)
	}
	// The empty cluster is accepted and selects nothing.
	mustPut(t, r, "empty", `{"cluster":{}}`)
	if _, _, err := r.Try(context.Background(), "empty", "", func(context.Context, Peer) error { return nil }); !errors.Is(err, ErrNoServers) {
		t.Fatalf("empty upstream: %v", err)
	}
	var ue *UnknownUpstreamError
	if _, _, err := r.Try(context.Background(), "nope", "", nil); !errors.As(err, &ue) || err.Error() != "unknown skey nope" {
		t.Fatalf("unknown: %v", err)
	}
}

// TestApplyShort: the short form over an upstream with every kind of field keeps what it does
// not name (an http check, timeouts, named levels), strictly refuses unknown fields, and leaves
// the old upstream unmodified.
func TestApplyShort(t *testing.T) {
	old, err := ParseUpstreamStrict([]byte(`{"typ":"http","timeout":2,"enable":true,"http_opts":{"query":"GET /health HTTP/1.0\r\n\r\n","statuses":{"500":false}},
		"cluster":{"a":{"servers":[{"host":"h1","port":1}]},"b":{"servers":[{"host":"h2","port":2}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(old)
	up, err := ApplyShort(old, []byte(`{"servers":[{"host":"h3","port":3}]}`), true)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(old)
	if string(before) != string(after) {
		t.Fatalf("old modified:\n%s\n%s", before, after)
	}
	if up.Typ != "http" || up.HTTPOpts == nil || up.HTTPOpts.Query == "" || float64(up.Timeout) != 2 || up.Enable == nil || !*up.Enable ||
		!up.Cluster.Named || up.Cluster.Levels[0].Name != "a" || up.Cluster.Levels[0].Servers[0].Host != "h3" || up.Cluster.Levels[1].Servers[0].Host != "h2" {
		t.Fatalf("short form lost fields: %+v", up)
	}
	if up, err = ApplyShort(old, []byte(`{"enable":false,"servers":[{"host":"h3","port":3}]}`), true); err != nil || *up.Enable || up.Typ != "http" {
		t.Fatalf("named field: %+v %v", up, err)
	}
	if _, err := ApplyShort(old, []byte(`{"enabel":false,"servers":[{"host":"h3","port":3}]}`), true); err == nil || !strings.Contains(err.Error(), `unknown field "enabel"`) {
		t.Fatalf("strict: %v", err)
	}
	if up, err = ApplyShort(nil, []byte(`{"servers":[{"host":"h3","port":3}]}`), true); err != nil || up.Typ != "" || len(up.Cluster.Levels) != 1 {
		t.Fatalf("no old: %+v %v", up, err)
	}
}

func TestPassiveWindows(t *testing.T) {
	c := newClock()
	r := &Registry{Now: c.now, DisableHeartbeatDefault: true}
	mustPut(t, r, "u", `{"cluster":[{"servers":[{"host":"a","port":1,"max_fails":2,"fail_timeout":10},{"host":"b","port":2,"max_fails":2,"fail_timeout":10}]}]}`)
	p := r.get("u")
	a, b := p.all[0], p.all[1]
	fail := func(pe *peer) { p.fail(pe, c.now()) }

	fail(a)
	if got := a.state.passive(a.srv, c.now()); got != StatusOK {
		t.Fatalf("one failure of 2: %s", got)
	}
	c.add(11 * time.Second) // the window expired: the count starts over
	fail(a)
	if got := a.state.passive(a.srv, c.now()); got != StatusOK {
		t.Fatalf("count must restart after fail_timeout: %s", got)
	}
	fail(a)
	if got := a.state.passive(a.srv, c.now()); got != StatusErr {
		t.Fatalf("two failures inside the window: %s", got)
	}
	// Never mark the last usable server down.
	fail(b)
	fail(b)
	if got := b.state.passive(b.srv, c.now()); got != StatusOK {
		t.Fatalf("last server marked down: %s", got)
	}
	// a is skipped while err, and comes back by itself after fail_timeout.
	for range 3 {
		peer, _, err := r.Try(context.Background(), "u", "", func(context.Context, Peer) error { return nil })
		if err != nil || peer.Server.Host != "b" {
			t.Fatalf("selected %v, %v; want b", peer.Server.Host, err)
		}
	}
	c.add(10*time.Second + time.Millisecond)
	if got := a.state.passive(a.srv, c.now()); got != StatusOK {
		t.Fatalf("after fail_timeout: %s", got)
	}
	// max_fails 0 disables accounting.
	mustPut(t, r, "off", `{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}`)
	po := r.get("off")
	for range 10 {
		po.fail(po.all[0], c.now())
	}
	if got := po.all[0].state.passive(po.all[0].srv, c.now()); got != StatusOK {
		t.Fatalf("max_fails 0: %s", got)
	}
}

func TestTryRetriesAndLimits(t *testing.T) {
	r := &Registry{DisableHeartbeatDefault: true}
	mustPut(t, r, "u", `{"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]},{"servers":[{"host":"c","port":3}]}]}`)
	var tried []string
	peer, attempts, err := r.Try(context.Background(), "u", "", func(_ context.Context, p Peer) error {
		tried = append(tried, p.Server.Host)
		if p.Server.Host != "c" {
			return errors.New("refused")
		}
		return nil
	})
	if err != nil || peer.Server.Host != "c" || attempts != 3 || tried[2] != "c" {
		t.Fatalf("level fallback: %v %d %v %v", peer.Server.Host, attempts, tried, err)
	}
	mustPut(t, r, "u", `{"try":2,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2},{"host":"c","port":3}]}]}`)
	_, attempts, err = r.Try(context.Background(), "u", "", func(context.Context, Peer) error { return errors.New("refused") })
	if attempts != 2 || err == nil || !strings.Contains(err.Error(), "2 of 2 tries failed, last: refused") {
		t.Fatalf("try limit: %d %v", attempts, err)
	}
	mustPut(t, r, "u", `{"try_timeout":0.05,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2},{"host":"c","port":3}]}]}`)
	_, attempts, err = r.Try(context.Background(), "u", "", func(context.Context, Peer) error {
		time.Sleep(60 * time.Millisecond)
		return errors.New("slow")
	})
	if attempts != 1 || !errors.Is(err, ErrTryTimeout) {
		t.Fatalf("try_timeout: %d %v", attempts, err)
	}
}

// TestTryBusyIsNotAFailure: an attempt that failed for the caller's own limit (Busy) moves on
// to the next server without telling passive health, and its error stays inspectable.
func TestTryBusyIsNotAFailure(t *testing.T) {
	r := &Registry{DisableHeartbeatDefault: true}
	mustPut(t, r, "u", `{"cluster":[{"servers":[{"host":"a","port":1,"max_fails":1},{"host":"b","port":2,"max_fails":1}]}]}`)
	full := errors.New("pool full")
	peer, attempts, err := r.Try(context.Background(), "u", "", func(_ context.Context, p Peer) error {
		if p.Server.Host == "a" {
			return Busy(full)
		}
		return nil
	})
	if err != nil || attempts != 2 || peer.Server.Host != "b" {
		t.Fatalf("after a busy server: %v %d %v", peer.Server.Host, attempts, err)
	}
	_, _, err = r.Try(context.Background(), "u", "", func(context.Context, Peer) error { return Busy(full) })
	if !errors.Is(err, full) {
		t.Fatalf("every server busy: %v", err)
	}
	for _, st := range r.Status("test")["cls:u"].([][]ServerStatus)[0] {
		if st.Passive != StatusOK || st.PassiveFails != 0 {
			t.Fatalf("a busy attempt counted against %s: %+v", st.Server, st)
		}
	}
}

// TestStateKeptAcrossPut: health of servers that stay survives an update.
func TestStateKeptAcrossPut(t *testing.T) {
	c := newClock()
	r := &Registry{Now: c.now}
	mustPut(t, r, "u", `{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}`)
	p := r.get("u")
	r.apply(p, []heartbeatResult{{status: StatusOK}, {status: StatusErr, msg: "refused"}}, c.now())
	mustPut(t, r, "u", `{"servers":[{"host":"b","port":2},{"host":"c","port":3}]}`)
	st := r.Status("test")["cls:u"].([][]ServerStatus)[0]
	if st[0].Status != StatusErr || st[0].Msg == nil || *st[0].Msg != "refused" || st[1].Status != StatusOK {
		t.Fatalf("status after put: %+v", st)
	}
}

func TestHeartbeatOrdering(t *testing.T) {
	ok := heartbeatResult{status: StatusOK}
	bad := heartbeatResult{status: StatusErr, msg: "refused"}
	unstable := heartbeatResult{status: StatusUnstable, msg: "master link status: down"}
	tests := []struct {
		name   string
		body   string
		rounds [][]heartbeatResult
		want   []Status
	}{
		{name: "failures before the first ok are written once it is seen", body: `{"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2},{"host":"c","port":3}]}]}`,
			rounds: [][]heartbeatResult{{bad, ok, unstable}}, want: []Status{StatusErr, StatusOK, StatusErr}},
		{name: "all failed, protected keeps the first unstable", body: `{"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}]}`,
			rounds: [][]heartbeatResult{{bad, bad}}, want: []Status{StatusUnstable, StatusErr}},
		{name: "all failed, unprotected", body: `{"protected":false,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}]}`,
			rounds: [][]heartbeatResult{{bad, bad}}, want: []Status{StatusErr, StatusErr}},
		{name: "sensibility 2 needs two failures", body: `{"sensibility":2,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}]}`,
			rounds: [][]heartbeatResult{{bad, ok}}, want: []Status{StatusOK, StatusOK}},
		{name: "sensibility 2 after two failures", body: `{"sensibility":2,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}]}`,
			rounds: [][]heartbeatResult{{bad, ok}, {bad, ok}}, want: []Status{StatusErr, StatusOK}},
		{name: "rise 2 needs two good checks to come back", body: `{"rise":2,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}]}`,
			rounds: [][]heartbeatResult{{bad, ok}, {ok, ok}}, want: []Status{StatusErr, StatusOK}},
		{name: "rise 2 after two good checks", body: `{"rise":2,"cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2}]}]}`,
			rounds: [][]heartbeatResult{{bad, ok}, {ok, ok}, {ok, ok}}, want: []Status{StatusOK, StatusOK}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			r := &Registry{Now: c.now}
			mustPut(t, r, "u", tt.body)
			for _, round := range tt.rounds {
				r.apply(r.get("u"), round, c.now())
			}
			for i, pe := range r.get("u").all {
				if got := pe.state.heartbeat(); got != tt.want[i] {
					t.Fatalf("server %d: %s; want %s", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestChecksAgainstSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	replies := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 1024)
				if n, _ := c.Read(buf); n == 0 {
					return // a connect-only check
				}
				select {
				case r := <-replies:
					c.Write([]byte(r))
				default:
				}
			}()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	srv := Server{Host: "127.0.0.1", Port: addr.Port}
	closed := Server{Host: "127.0.0.1", Port: freeClosedPort(t)}
	ctx := context.Background()
	up := &Upstream{Timeout: 1, HTTPOpts: &HTTPOpts{Query: "GET /status HTTP/1.0\r\n\r\n", Statuses: map[string]bool{"500": false}}}

	if res := check(ctx, up, "", srv); res.status != StatusOK {
		t.Fatalf("general: %+v", res)
	}
	if res := check(ctx, up, "", closed); res.status != StatusErr || !strings.Contains(res.msg, "refused") {
		t.Fatalf("general closed: %+v", res)
	}
	up.Typ = TypHTTP
	replies <- "HTTP/1.1 200 OK\r\n\r\n"
	if res := check(ctx, up, "", srv); res.status != StatusOK {
		t.Fatalf("http 200: %+v", res)
	}
	replies <- "HTTP/1.1 500 Oops\r\n\r\n"
	if res := check(ctx, up, "", srv); res.status != StatusErr || res.msg != "bad status code 500" {
		t.Fatalf("http 500: %+v", res)
	}
	replies <- "SSH-2.0-OpenSSH\r\n"
	if res := check(ctx, up, "", srv); res.status != StatusErr || !strings.HasPrefix(res.msg, "bad status line") {
		t.Fatalf("http garbage: %+v", res)
	}
}

func freeClosedPort(t *testing.T) int {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FuzzPutJSON feeds arbitrary admin PUT bodies: every one is accepted or refused with a
// ValidationError, and an accepted upstream survives a round trip through GET upstream info.
func FuzzPutJSON(f *testing.F) {
	for _, s := range []string{
		`{"servers":[{"host":"a","port":1}]}`,
		`{"mode":"ip_hash","cluster":{"x":{"servers":[{"host":"a","port":1,"weight":3}]}}}`,
		`{"cluster":[{"servers":[{"host":"a","port":1}]},{"servers":[{"host":"b","port":2}]}],"try":1}`,
		`{"cluster":{}}`, `[]`, `{"servers":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := &Registry{DisableHeartbeatDefault: true}
		err := r.PutJSON("u", body)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("non-validation error %T: %v", err, err)
			}
			return
		}
		out, err := json.Marshal(r.Info()["u"])
		if err != nil {
			t.Fatal(err)
		}
		r2 := &Registry{DisableHeartbeatDefault: true}
		if err := r2.PutJSON("u", out); err != nil {
			t.Fatalf("info of an accepted upstream is refused: %s: %v", out, err)
		}
		if _, _, err := r.Try(context.Background(), "u", "k", func(context.Context, Peer) error { return errors.New("x") }); err == nil {
			t.Fatal("all tries failed but Try succeeded")
		}
	})
}

func TestLeastConn(t *testing.T) {
	r := &Registry{DisableHeartbeatDefault: true}
	mustPut(t, r, "u", `{"mode":"least_conn","cluster":[{"servers":[{"host":"a","port":1},{"host":"b","port":2,"weight":2}]}]}`)
	ok := func(context.Context, Peer) error { return nil }
	var releases []func()
	counts := map[string]int{}
	for range 6 {
		p, _, err := r.Try(context.Background(), "u", "", ok)
		if err != nil {
			t.Fatal(err)
		}
		counts[p.Server.Host]++
		releases = append(releases, p.Acquire())
	}
	// Open connections per unit of weight stay level: b (weight 2) holds twice a's.
	if counts["a"] != 2 || counts["b"] != 4 {
		t.Fatalf("least_conn spread %v; want a:2 b:4", counts)
	}
	for _, rel := range releases {
		rel()
	}
	if st := r.Status("")["cls:u"].([][]ServerStatus)[0]; st[0].ActiveConns != 0 || st[1].ActiveConns != 0 {
		t.Fatalf("connections not released: %+v", st)
	}
}

// TestOneCheckPerServer: a server in two upstreams is checked over one connection at a time.
func TestOneCheckPerServer(t *testing.T) {
	ln := testutil.Listen(t)
	var open, most atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n := open.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				c.Read(make([]byte, 64))
				time.Sleep(100 * time.Millisecond)
				open.Add(-1) // before the answer: the next check may start the moment it is read
				c.Write([]byte("HTTP/1.0 200 OK\r\n\r\n"))
			}()
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	up := fmt.Sprintf(`{"typ":"http","http_opts":{"query":"GET / HTTP/1.0\r\n\r\n"},"cluster":[{"servers":[{"host":%q,"port":%s}]}]}`, host, port)
	var r Registry
	for _, name := range []string{"a", "b", "c"} {
		if err := r.PutJSON(name, []byte(up)); err != nil {
			t.Fatal(err)
		}
	}
	r.CheckOnce(context.Background())
	if most.Load() != 1 {
		t.Fatalf("%d checks of one server at once; want 1", most.Load())
	}
}
