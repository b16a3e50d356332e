// Package deploy_test checks what deploy/ ships against the code: every metric the Grafana
// dashboard, the alert rules and README name is exported by a real daemon, and the systemd
// units parse.
package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmd/mysqlproxy"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/cmd/snirouter"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/metrics"
	"github.com/slardar-go/slardar/pkg/store"
	"github.com/slardar-go/slardar/pkg/syncer"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func httpOn() config.HTTP {
	addr := "127.0.0.1:0"
	return config.HTTP{Listen: &addr}
}

// exported scrapes every daemon after some activity and returns the metric names it exports.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	names := map[string]bool{}
	add := func(m testutil.Metrics) {
		for n := range m {
			names[n] = true
		}
	}

	// slardar-proxy: a connection, a heartbeat round, an admin command, a script run.
	backend := testutil.Greeter("hi")
	host, port, _ := net.SplitHostPort(backend)
	sp := &config.File{Common: config.Common{Admin: config.Admin{Listen: "127.0.0.1:0"}, HTTP: httpOn(),
		Checkups: config.Checkups{Interval: 100 * time.Millisecond}}, Listeners: []config.Listener{{Listen: "127.0.0.1:0", Upstream: "u"}}}
	p, err := slardarproxy.Start(ctx, quiet, sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	if _, err := admin.Do(ctx, p.AdminAddr(), "", "PUT", "upstream", "u", []byte(fmt.Sprintf(`{"servers":[{"host":%q,"port":%s}]}`, host, port))); err != nil {
		t.Fatal(err)
	}
	_, lport, _ := net.SplitHostPort(p.ListenerAddr("u"))
	admin.Do(ctx, p.AdminAddr(), "", "LOAD", "code", "script.preread"+lport, []byte("local x = 1"))
	testutil.Greeting(p.ListenerAddr("u"))
	// A MariaDB replica, for the replication lag; the backend drained, for the operator's state.
	repl, err := testserver.StartReplication(ctx, t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repl.Stop() })
	if _, err := admin.Do(ctx, p.AdminAddr(), "", "PUT", "upstream", "r", []byte(fmt.Sprintf(
		`{"typ":"mysql","role":"replica","user":%q,"pass":%q,"servers":[{"host":"127.0.0.1","port":%d}]}`, testserver.User, testserver.Password, repl.Replica.Port))); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Do(ctx, p.AdminAddr(), "", "PUT", "server", "u/"+backend, []byte(`{"state":"drain"}`)); err != nil {
		t.Fatal(err)
	}
	replica := net.JoinHostPort("127.0.0.1", fmt.Sprint(repl.Replica.Port))
	testutil.WaitFor(t, "the replica's lag and the drained server's health", 10*time.Second, func() bool {
		m := testutil.Scrape(t, p.HTTPAddr())
		lag, lagged := m.Value("slardar_server_replication_lag_seconds", map[string]string{"upstream": "r", "server": replica})
		health, _ := m.Value("slardar_server_state", map[string]string{"upstream": "u", "server": backend, "state": "ok"})
		drain, _ := m.Value("slardar_server_operator_state", map[string]string{"upstream": "u", "server": backend, "state": "drain"})
		up, _ := m.Value("slardar_server_up", map[string]string{"upstream": "u", "server": backend})
		if lagged && lag == 0 && health == 1 && drain == 1 && up == 0 {
			add(m)
			return true
		}
		return false
	})

	// mysql-proxy: one statement through it, to the replication's primary (the query digests).
	free, _ := testserver.FreePort()
	mp, err := config.ParseMySQL([]byte(fmt.Sprintf("admin: {listen: \"127.0.0.1:0\"}\nlisteners: [{listen: \"127.0.0.1:%d\", upstream: db}]\n"+
		"users: [{name: %s, password: %s}]\nupstreams: {db: {servers: [{host: 127.0.0.1, port: %d}]}}\n"+
		"rules: [{name: r, match: {regexp: '^select'}, destination: primary}]\n", free, testserver.User, testserver.Password, repl.Primary.Port)))
	if err != nil {
		t.Fatal(err)
	}
	mp.HTTP = httpOn()
	m, err := mysqlproxy.Start(ctx, quiet, mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if out, err := exec.Command("mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", fmt.Sprint(free), "-u"+testserver.User, "-p"+testserver.Password,
		"-e", "select 1").CombinedOutput(); err != nil {
		t.Fatalf("a statement through mysql-proxy: %v\n%s", err, out)
	}
	add(testutil.Scrape(t, m.HTTPAddr()))

	// sni-router.
	sr, err := config.ParseSNI([]byte("admin: {listen: \"127.0.0.1:0\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sr.HTTP, sr.Listen = httpOn(), []string{"127.0.0.1:0"}
	r, err := snirouter.Start(ctx, quiet, sr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	add(testutil.Scrape(t, r.HTTPAddr()))

	// store-sync's collector, after a sync from a directory to the slardar-proxy.
	dir := t.TempDir()
	s := &syncer.Syncer{Syncs: []syncer.Sync{{Store: &store.Dir{Root: dir}, Prefix: store.DefaultPrefix, Targets: []string{p.AdminAddr()}}},
		Log: quiet, Metrics: &syncer.Metrics{}}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(sctx) }()
	reg := metrics.NewRegistry("test")
	reg.MustRegister(s.Metrics)
	ep, err := metrics.Serve("127.0.0.1:0", reg, func() error { return nil }, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	testutil.WaitFor(t, "store-sync's first sync", 10*time.Second, func() bool {
		return testutil.Scrape(t, ep.Addr())["slardar_sync_last_success_timestamp_seconds"] != nil
	})
	add(testutil.Scrape(t, ep.Addr()))
	stop()
	<-done
	return names
}

var metricName = regexp.MustCompile(`\bslardar_[a-z_]+`)

// mentioned are the slardar_ metric names in text; histogram series (_bucket, _sum, _count)
// count as their histogram.
func mentioned(text string) []string {
	var out []string
	for _, n := range metricName.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && strings.HasSuffix(base, "_seconds") {
				n = base
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func TestDashboardRulesAndReadmeUseExportedMetrics(t *testing.T) {
	names := exported(t)

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile("grafana/slardar.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string            `yaml:"alert"`
				Expr  string            `yaml:"expr"`
				For   string            `yaml:"for"`
				Label map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err = os.ReadFile("prometheus/slardar-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(false)
	if err := dec.Decode(&rules); err != nil || len(rules.Groups) == 0 {
		t.Fatalf("rules: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Label["severity"] == "" {
				t.Errorf("rule %+v lacks an alert name, expr or severity", r)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ops, _ := strings.Cut(string(readme), "\n## Operations\n")
	ops, _, _ = strings.Cut(ops, "\n## ")
	for _, src := range []struct{ what, text string }{
		{"dashboard and rules", strings.Join(exprs, "\n")},
		{"README's Operations", ops},
	} {
		used := mentioned(src.text)
		if len(used) < 10 {
			t.Fatalf("%s name only %d metrics: %v", src.what, len(used), used)
		}
		for _, n := range used {
			if !names[n] {
				t.Errorf("%s use %s, which no daemon exports", src.what, n)
			}
		}
	}
	var _ prometheus.Collector = (*syncer.Metrics)(nil)
}

// TestSystemdUnits: systemd-analyze verify finds nothing to say about the units (their binaries
// replaced by /bin/true, which exists everywhere).
func TestSystemdUnits(t *testing.T) {
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) < 4 {
		t.Fatalf("units: %v", units)
	}
	dir := t.TempDir()
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		fixed := regexp.MustCompile(`/usr/local/bin/[a-z-]+`).ReplaceAll(data, []byte("/bin/true"))
		os.WriteFile(filepath.Join(dir, filepath.Base(u)), fixed, 0o644)
	}
	copies, _ := filepath.Glob(filepath.Join(dir, "*.service"))
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, copies...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdUnitsExposure: systemd-analyze security rates every unit's exposure at 2.5 or
// less (10 is a unit with no sandboxing at all).
func TestSystemdUnitsExposure(t *testing.T) {
	units, _ := filepath.Glob("systemd/*.service")
	for _, u := range units {
		out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", u).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security %s: %v\n%s", u, err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no exposure level in\n%s", u, out)
		}
		var level float64
		fmt.Sscan(string(m[1]), &level)
		if level > 2.5 {
			t.Errorf("%s: exposure %.1f, above 2.5:\n%s", u, level, out)
		}
	}
}

// TestMakeInstall: make install puts the configs the units name under sysconfdir (the users
// file private), points the units at them, and a second install keeps an operator's edits;
// every installed config passes its daemon's --check with the installed binaries.
func TestMakeInstall(t *testing.T) {
	tmp := t.TempDir()
	root, etc := filepath.Join(tmp, "root"), "/etc/slardar-test"
	install := func() {
		t.Helper()
		cmd := exec.Command("make", "-C", "..", "install", "OUT="+filepath.Join(tmp, "bin"), "DESTDIR="+root, "prefix=/usr", "sysconfdir="+etc)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	conf := filepath.Join(root, etc, "slardar")
	if fi, err := os.Stat(filepath.Join(conf, "mysql-users.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v %v", fi, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/mysql-proxy.service"))
	if err != nil || !strings.Contains(string(unit), "--config "+etc+"/slardar/mysql-proxy.yaml") || !strings.Contains(string(unit), "ExecStart=/usr/bin/mysql-proxy") {
		t.Fatalf("unit: %v\n%s", err, unit)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/man/man5/slardar-config.5")); err != nil {
		t.Fatalf("the config format's man page: %v", err)
	}
	bin := filepath.Join(root, "usr/bin")
	for _, c := range [][]string{
		{"slardar-proxy", "--check", "--config", "slardar.yaml"},
		{"mysql-proxy", "--check", "--config", "mysql-proxy.yaml", "--users-file", "mysql-users.yaml"},
		{"sni-router", "--check", "--config", "sni-router.yaml"},
		{"store-sync", "--check", "--config", "store-sync.yaml"},
	} {
		cmd := exec.Command(filepath.Join(bin, c[0]), c[1:]...)
		cmd.Dir = conf
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "config ok") {
			t.Errorf("installed %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	edited := []byte("# mine\n")
	os.WriteFile(filepath.Join(conf, "slardar.yaml"), edited, 0o644)
	install()
	if got, _ := os.ReadFile(filepath.Join(conf, "slardar.yaml")); string(got) != string(edited) {
		t.Fatalf("a second make install replaced the operator's config:\n%s", got)
	}
}
