package storesync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
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
	if err == nil || !strings.Contains(out.String(), "put     upstream  3131") || !strings.Contains(out.String(), "config/slardar/upstreams_stream/broken") {
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
