package syncer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/store"
)

var (
	consulProc, etcdProc *testserver.Process
	backendA, backendB   string // TCP servers that greet with "A" / "B"
)

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "syncer-test-")
	code := func() int {
		var err error
		ctx := context.Background()
		if consulProc, err = testserver.StartConsul(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, "consul (make test builds it):", err)
			return 1
		}
		defer consulProc.Stop()
		if etcdProc, err = testserver.StartEtcd(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			return 1
		}
		defer etcdProc.Stop()
		backendA, backendB = testutil.Greeter("A"), testutil.Greeter("B")
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func upstreamJSON(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`{"enable":false,"servers":[{"host":%q,"port":%s}]}`, host, port)
}

// proxy runs an in-process slardar-proxy with a listener for upstream "3131".
func proxy(t *testing.T, adminAddr string) *slardarproxy.Daemon {
	t.Helper()
	if adminAddr == "" {
		adminAddr = "127.0.0.1:0"
	}
	cfg := &config.File{Common: config.Common{Admin: config.Admin{Listen: adminAddr}},
		Listeners: []config.Listener{{Listen: "127.0.0.1:0", Upstream: "3131"}}}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := slardarproxy.Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, func() (*config.File, error) { return cfg, nil })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	return d
}

// greeting is what a new connection through the proxy's 3131 listener reads ("" if it fails).
func greeting(d *slardarproxy.Daemon) string { return testutil.Greeting(d.ListenerAddr("3131")) }

func syncer(t *testing.T, st store.Store, prefix string, targets ...*slardarproxy.Daemon) *Syncer {
	t.Helper()
	var addrs []string
	for _, d := range targets {
		addrs = append(addrs, d.AdminAddr())
	}
	s := &Syncer{Syncs: []Sync{{Store: st, Prefix: prefix, Targets: addrs}}, Resync: 500 * time.Millisecond,
		DebounceMin: 20 * time.Millisecond, DebounceMax: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func all(ds []*slardarproxy.Daemon, want string) func() bool {
	return func() bool {
		for _, d := range ds {
			if greeting(d) != want {
				return false
			}
		}
		return true
	}
}

func hasUpstream(d *slardarproxy.Daemon, name string) bool {
	c, err := admin.Dial(context.Background(), d.AdminAddr(), "")
	if err != nil {
		return false
	}
	defer c.Close()
	r, err := c.Do(context.Background(), "GET", "upstream", "info", nil)
	return err == nil && bytes.Contains(r.Data, []byte(`"`+name+`":`))
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestEndToEnd: a change made with each store's own client reaches two proxies and changes
// where new connections go; a delete removes the upstream.
func TestEndToEnd(t *testing.T) {
	consulBin, _ := testserver.ConsulBinary()
	dir := t.TempDir()
	tests := []struct {
		name   string
		url    string
		put    func(t *testing.T, key, val string)
		delete func(t *testing.T, key string)
	}{
		{name: "consul", url: "consul://" + consulProc.Addr,
			put:    func(t *testing.T, k, v string) { run(t, consulBin, "kv", "put", "-http-addr="+consulProc.Addr, k, v) },
			delete: func(t *testing.T, k string) { run(t, consulBin, "kv", "delete", "-http-addr="+consulProc.Addr, k) }},
		{name: "etcd", url: "etcd://" + etcdProc.Addr,
			put:    func(t *testing.T, k, v string) { run(t, "etcdctl", "--endpoints="+etcdProc.Addr, "put", k, v) },
			delete: func(t *testing.T, k string) { run(t, "etcdctl", "--endpoints="+etcdProc.Addr, "del", k) }},
		{name: "dir", url: "dir://" + dir,
			put: func(t *testing.T, k, v string) {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, k)), 0o755)
				os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644)
			},
			delete: func(t *testing.T, k string) { os.Remove(filepath.Join(dir, k)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := "e2e-" + tt.name + "/"
			st, err := store.Open(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			proxies := []*slardarproxy.Daemon{proxy(t, ""), proxy(t, "")}
			syncer(t, st, prefix, proxies...)
			key := prefix + "upstreams_stream/3131"
			tt.put(t, key, upstreamJSON(backendA))
			d := testutil.WaitFor(t, "both proxies to reach A", 15*time.Second, all(proxies, "A"))
			tt.put(t, key, upstreamJSON(backendB))
			d2 := testutil.WaitFor(t, "both proxies to reach B", 15*time.Second, all(proxies, "B"))
			t.Logf("%s: store write to both proxies routing: %v, then %v", tt.name, d, d2)
			tt.delete(t, key)
			testutil.WaitFor(t, "the upstream to be deleted", 15*time.Second, func() bool { return !hasUpstream(proxies[0], "3131") && !hasUpstream(proxies[1], "3131") })
		})
	}
}

// TestRefillAndStoreDown: a proxy restarted empty is refilled; with etcd stopped the proxies
// keep their configuration, and sync resumes when it returns.
func TestRefillAndStoreDown(t *testing.T) {
	st, err := store.Open("etcd://" + etcdProc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prefix := "refill/"
	ctx := context.Background()
	st.Put(ctx, prefix+"upstreams_stream/3131", []byte(upstreamJSON(backendA)))
	p1 := proxy(t, "")
	adminAddr := p1.AdminAddr()
	p1.Shutdown(ctx)
	// The syncer targets a fixed admin address; the first proxy there goes away.
	p2 := proxy(t, adminAddr)
	syncer(t, st, prefix, p2)
	testutil.WaitFor(t, "proxy filled", 15*time.Second, all([]*slardarproxy.Daemon{p2}, "A"))
	p2.Shutdown(ctx)
	p3 := proxy(t, adminAddr) // restarted empty
	took := testutil.WaitFor(t, "restarted proxy refilled", 15*time.Second, all([]*slardarproxy.Daemon{p3}, "A"))
	t.Logf("restarted empty proxy refilled in %v (resync 500ms)", took)

	etcdProc.Stop()
	time.Sleep(time.Second)
	if greeting(p3) != "A" {
		t.Fatal("proxy lost its configuration while the store was down")
	}
	if err := etcdProc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st.Put(ctx, prefix+"upstreams_stream/3131", []byte(upstreamJSON(backendB)))
	testutil.WaitFor(t, "sync to resume after the store returned", 15*time.Second, all([]*slardarproxy.Daemon{p3}, "B"))
}

// TestBurstAndInvalid: 1000 keys changed in a burst end equal on every proxy; invalid values
// are skipped and reported while the valid ones apply.
func TestBurstAndInvalid(t *testing.T) {
	st, err := store.Open("etcd://" + etcdProc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prefix := "burst/"
	proxies := []*slardarproxy.Daemon{proxy(t, ""), proxy(t, "")}
	s := syncer(t, st, prefix, proxies...)
	ctx := context.Background()
	st.Put(ctx, prefix+"upstreams_stream/bad-json", []byte(`{"servers":`))
	st.Put(ctx, prefix+"lua_stream/bad-lua", []byte(`x = = 1`))
	st.Put(ctx, prefix+"lua_stream/script.content1", []byte(`ngx.say("ok")`))
	for i := range 1000 {
		st.Put(ctx, fmt.Sprintf("%supstreams_stream/u%04d", prefix, i), []byte(upstreamJSON(backendA)))
	}
	took := testutil.WaitFor(t, "1000 upstreams on both proxies", 15*time.Second, func() bool {
		for _, d := range proxies {
			c, err := admin.Dial(ctx, d.AdminAddr(), "")
			if err != nil {
				return false
			}
			r, _ := c.Do(ctx, "GET", "upstream", "info", nil)
			code, _ := c.Do(ctx, "GET", "code", "info", nil)
			c.Close()
			if bytes.Count(r.Data, []byte(`"u0`)) != 1000 || !bytes.Contains(code.Data, []byte("script.content1")) {
				return false
			}
		}
		return true
	})
	t.Logf("1000 keys: both proxies equal to the store %v after the last write", took)
	if out := scrape(t, s.Metrics); !strings.Contains(out, `slardar_sync_invalid_keys{store="etcd://`+etcdProc.Addr+`"} 2`) {
		t.Fatalf("metrics:\n%s", out)
	}
	var health string
	testutil.WaitFor(t, "health to report in sync", 15*time.Second, func() bool {
		rec := httptest.NewRecorder()
		s.ServeHealth(rec, nil)
		health = rec.Body.String()
		return rec.Code == 200
	})
	if !strings.Contains(health, `"invalid_keys":{"etcd://`+etcdProc.Addr+`":2}`) {
		t.Fatalf("/health does not count the invalid keys: %s", health)
	}
	for _, d := range proxies {
		if hasUpstream(d, "bad-json") {
			t.Fatal("an invalid upstream was applied")
		}
	}
}

// TestEtcdCompaction: a watch whose revision was compacted away ends with a resync request,
// and the next full read sees every key.
func TestEtcdCompaction(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open("etcd://" + etcdProc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := st.(*store.Etcd)
	prefix := "compact/"
	e.Put(ctx, prefix+"upstreams_stream/a", []byte("1"))
	_, rev, err := e.ListRev(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.Put(ctx, fmt.Sprintf("%supstreams_stream/k%d", prefix, i), []byte("x"))
	}
	_, latest, _ := e.ListRev(ctx, prefix)
	if err := e.Compact(ctx, latest); err != nil {
		t.Fatal(err)
	}
	err = e.Follow(ctx, prefix, rev, map[string][]byte{}, func(map[string][]byte) {})
	if err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("follow from a compacted revision: %v", err)
	}
	m, err := e.List(ctx, prefix)
	if err != nil || len(m) != 11 {
		t.Fatalf("full read after compaction: %d keys, %v", len(m), err)
	}
}

// TestStoreOutageNoticed (issue 15): with etcd killed, /health turns 503 and the store's metric
// 0 within seconds, with a log line (they stayed 200 and 1 for 80 s+); after a long outage the
// first change arrives within seconds (it took 27.6 s); a proxy restarted empty is refilled
// without waiting for the 30 s resync, while /health says it is not in sync.
func TestStoreOutageNoticed(t *testing.T) {
	st, err := store.Open("etcd://" + etcdProc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prefix := "outage/"
	ctx := context.Background()
	st.Put(ctx, prefix+"upstreams_stream/3131", []byte(upstreamJSON(backendA)))
	p1 := proxy(t, "")
	adminAddr := p1.AdminAddr()
	var logs testutil.SyncBuffer
	s := &Syncer{Syncs: []Sync{{Store: st, Prefix: prefix, Targets: []string{adminAddr}}}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	healthy := func() bool {
		rec := httptest.NewRecorder()
		s.ServeHealth(rec, httptest.NewRequest("GET", "/health", nil))
		return rec.Code == 200
	}
	testutil.WaitFor(t, "in sync", 10*time.Second, func() bool { return greeting(p1) == "A" && healthy() })

	p1.Shutdown(ctx)
	p2 := proxy(t, adminAddr) // restarted empty; the resync is 30 s away
	took := testutil.WaitFor(t, "the restarted proxy refilled", 8*time.Second, all([]*slardarproxy.Daemon{p2}, "A"))
	t.Logf("restarted empty proxy refilled in %v (resync 30s)", took)

	etcdProc.Stop()
	took = testutil.WaitFor(t, "/health to notice the store is down", 6*time.Second, func() bool { return !healthy() })
	t.Logf("store outage noticed in %v", took)
	// /health may turn before the line is written: wait for the line, as for any event.
	testutil.WaitFor(t, "the outage logged (store unreachable)", 5*time.Second, func() bool { return strings.Contains(logs.String(), "store unreachable") })
	if out := scrape(t, s.Metrics); !strings.Contains(out, `slardar_sync_store_up{store="etcd://`+etcdProc.Addr+`"} 0`) {
		t.Fatalf("store_up while etcd is down:\n%s", out)
	}
	time.Sleep(5 * time.Second) // long enough for client backoffs to have grown
	if err := etcdProc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st.Put(ctx, prefix+"upstreams_stream/3131", []byte(upstreamJSON(backendB)))
	took = testutil.WaitFor(t, "the first change after the outage", 8*time.Second, all([]*slardarproxy.Daemon{p2}, "B"))
	t.Logf("first change after the outage arrived in %v", took)
	testutil.WaitFor(t, "/health back to 200", 5*time.Second, healthy)
}

// scrape is the Prometheus text exposition of a collector.
func scrape(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
