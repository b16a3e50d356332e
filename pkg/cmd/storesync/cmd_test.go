package storesync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/store"
	"github.com/slardar-go/slardar/pkg/syncer"
)

// proxy runs an in-process slardar-proxy with a listener for upstream "3131".
func proxy(t *testing.T) *slardarproxy.Daemon {
	t.Helper()
	cfg := &config.File{Common: config.Common{Admin: config.Admin{Listen: "127.0.0.1:0"}},
		Listeners: []config.Listener{{Listen: "127.0.0.1:0", Upstream: "3131"}}}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := slardarproxy.Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	return d
}

func TestOnceAndDryRun(t *testing.T) {
	backend := testutil.Greeter("A")
	host, port, _ := net.SplitHostPort(backend)
	dir := t.TempDir()
	st := &store.Dir{Root: dir}
	ctx := context.Background()
	p := proxy(t)
	st.Put(ctx, "config/slardar/upstreams_stream/3131", []byte(fmt.Sprintf(`{"enable":false,"servers":[{"host":%q,"port":%s}]}`, host, port)))
	st.Put(ctx, "config/slardar/upstreams_stream/broken", []byte(`nope`))
	hasUpstream := func() bool {
		r, err := admin.Do(ctx, p.AdminAddr(), "", "GET", "upstream", "info", nil)
		return err == nil && bytes.Contains(r.Data, []byte(`"3131":`))
	}
	var out bytes.Buffer
	cmd := NewCommand()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--source", "dir://" + dir, "--target", p.AdminAddr(), "--dry-run"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(out.String(), "put     upstream  3131") || !strings.Contains(out.String(), "config/slardar/upstreams_stream/broken") ||
		!strings.Contains(out.String(), "put upstream 3131 on "+p.AdminAddr()+":\n+ {") || !strings.Contains(out.String(), `+   "enable": false,`) {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	if hasUpstream() {
		t.Fatal("dry run changed the proxy")
	}
	st.Delete(ctx, "config/slardar/upstreams_stream/broken")
	out.Reset()
	cmd = NewCommand()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--source", "dir://" + dir, "--target", p.AdminAddr(), "--once", "-o", "json"})
	if err := cmd.Execute(); err != nil || !strings.Contains(out.String(), `"action": "put"`) {
		t.Fatalf("once: %v\n%s", err, out.String())
	}
	if testutil.Greeting(p.ListenerAddr("3131")) != "A" {
		t.Fatal("--once did not apply")
	}
}

func TestExampleConfig(t *testing.T) {
	cmd := NewCommand()
	cmd.ParseFlags(nil)
	f, err := (&Options{ConfigPath: "../../../examples/store-sync.yaml", HTTPListen: DefaultListen, Resync: syncer.DefaultResync}).config(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Syncs) != 1 || len(f.Syncs[0].Targets) != 2 || f.Debounce.Max != time.Second {
		t.Fatalf("example: %+v", f)
	}
}

// TestEndpointsAndReload: the running command serves /livez, /readyz (the store reachable),
// /metrics (client_golang, with the process metrics) and /health; SIGHUP with a broken file
// keeps the running sync and says so in the metrics; a good file is applied.
func TestEndpointsAndReload(t *testing.T) {
	p := proxy(t)
	dir := t.TempDir()
	st := &store.Dir{Root: dir}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backend := testutil.Greeter("A")
	host, port, _ := net.SplitHostPort(backend)
	st.Put(ctx, "config/slardar/upstreams_stream/3131", []byte(fmt.Sprintf(`{"enable":false,"servers":[{"host":%q,"port":%s}]}`, host, port)))
	web := testutil.Listen(t)
	webAddr := web.Addr().String()
	web.Close()
	cfgPath := filepath.Join(t.TempDir(), "store-sync.yaml")
	good := fmt.Sprintf("listen: %s\nsyncs: [{source: \"dir://%s\", targets: [%s]}]\n", webAddr, dir, p.AdminAddr())
	os.WriteFile(cfgPath, []byte(good), 0o644)
	cmd := NewCommand()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var logs testutil.SyncBuffer
	cmd.SetErr(&logs)
	cmd.SetArgs([]string{"--config", cfgPath})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	testutil.WaitFor(t, "/readyz", 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", webAddr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		code, _ := testutil.Get(t, webAddr, "/readyz")
		return code == 200
	})
	if code, _ := testutil.Get(t, webAddr, "/livez"); code != 200 {
		t.Fatalf("/livez: %d", code)
	}
	testutil.WaitFor(t, "/health in sync", 10*time.Second, func() bool {
		code, _ := testutil.Get(t, webAddr, "/health")
		return code == 200
	})
	m := testutil.Scrape(t, webAddr)
	if v, _ := m.Value("slardar_sync_store_up", map[string]string{"store": "dir://" + dir}); v != 1 || m["process_cpu_seconds_total"] == nil || m["slardar_build_info"] == nil {
		t.Fatalf("metrics: store_up %v, process metrics %v", v, m["process_cpu_seconds_total"] != nil)
	}

	os.WriteFile(cfgPath, []byte("syncs: [{source: \"nope://x\", targets: [a:1]}]\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testutil.WaitFor(t, "failed reload reported", 5*time.Second, func() bool {
		v, _ := testutil.Scrape(t, webAddr).Value("slardar_config_last_reload_successful", nil)
		return v == 0 && strings.Contains(logs.String(), "config not reloaded")
	})
	if code, _ := testutil.Get(t, webAddr, "/health"); code != 200 {
		t.Fatal("a failed reload stopped the running sync")
	}
	os.WriteFile(cfgPath, []byte(good), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testutil.WaitFor(t, "good reload", 5*time.Second, func() bool {
		v, _ := testutil.Scrape(t, webAddr).Value("slardar_config_last_reload_successful", nil)
		return v == 1 && strings.Contains(logs.String(), "config reloaded")
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("store-sync did not stop")
	}
}
