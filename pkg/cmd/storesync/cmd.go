// Package storesync is store-sync's command line: flags and config file, --once/--dry-run, or
// the syncer with its health and metrics endpoint until a signal.
package storesync

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/lifecycle"
	"github.com/slardar-go/slardar/pkg/metrics"
	"github.com/slardar-go/slardar/pkg/store"
	"github.com/slardar-go/slardar/pkg/syncer"
	"github.com/slardar-go/slardar/pkg/version"
)

// DefaultListen serves /metrics, /livez, /readyz and /health.
const DefaultListen = "127.0.0.1:1898"

// Options are store-sync's flags.
type Options struct {
	ConfigPath string
	Source     string
	Prefix     string
	Targets    []string
	Token      string
	Prune      bool
	HTTPListen string
	Resync     time.Duration
	Once       bool
	DryRun     bool
	Check      bool
	Output     string
	LogFormat  string
	LogLevel   string
}

// NewCommand builds the store-sync root command.
func NewCommand() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "store-sync",
		Short: "Keep slardar proxies in step with Consul KV, etcd or a directory",
		Long: `store-sync watches a store (Consul blocking queries, etcd watch from the read revision with a
full resync after compaction, or a directory) and makes every target proxy's upstreams, Lua code
and routes equal to it, level-triggered: it reads each target's state back (GET upstream info,
GET code info, GET route info), applies only the difference, debounces bursts, resyncs every
target periodically (a restarted, empty proxy is refilled) and retries a down target with capped
backoff without holding back the others.

Layout under the prefix (default config/slardar/): upstreams_stream/<name> (upstream JSON),
lua_stream/<name> (Lua; lua_stream/version is ignored), routes/<pattern> (sni-router).
A store that is unreachable changes nothing; an invalid value is reported with its key and
skipped. Deletions in the store are applied to names the store had while store-sync ran;
--prune deletes everything the store does not have.

On --http-listen: /metrics (Prometheus), /livez, /readyz (200 when every store is reachable;
a target that is down is a metric and a /health detail, not unreadiness) and /health (200 when
the stores are reachable and every target is in sync, with the details as JSON). SIGHUP reads
the config file and flags again: a config that does not load leaves the running syncs as they
are.

` + cmdutil.EnvHelp + `
A token given to one sync of the config file wins over --token.`,
		Example: `  store-sync --source consul://127.0.0.1:8500 --target 127.0.0.1:1895 --target 10.0.0.2:1895
  store-sync --source etcd://127.0.0.1:2379 --target 127.0.0.1:1895 --once
  store-sync --source dir:///etc/slardar/store --target 127.0.0.1:1895 --dry-run -o json`,
		Args:    cobra.NoArgs,
		Version: version.Version,
		RunE:    func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	cmd.SetVersionTemplate(version.Template)
	f := cmd.Flags()
	f.StringVarP(&o.ConfigPath, "config", "c", "", "YAML config file (several sources and targets)")
	f.StringVar(&o.Source, "source", "", "store: consul://HOST:PORT, etcd://HOST:PORT[,HOST:PORT] or dir:///PATH")
	f.StringVar(&o.Prefix, "prefix", store.DefaultPrefix, "key prefix")
	f.StringArrayVar(&o.Targets, "target", nil, "admin address of a proxy; repeatable")
	f.StringVar(&o.Token, "token", "", "admin token of the targets")
	cmdutil.Alias(f, "admin-token", "token")
	f.BoolVar(&o.Prune, "prune", false, "delete from the proxies what the store does not have")
	f.StringVar(&o.HTTPListen, "http-listen", DefaultListen, "address of /metrics, /livez, /readyz and /health")
	cmdutil.Alias(f, "listen", "http-listen")
	f.DurationVar(&o.Resync, "resync", syncer.DefaultResync, "full resync period")
	f.BoolVar(&o.Once, "once", false, "apply once and exit; non-zero if anything is not in sync")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan and the diff of each change, and change nothing")
	f.BoolVar(&o.Check, "check", false, "check the config file and flags, print what would be synced where, and exit (0: valid, 2: not)")
	f.StringVarP(&o.Output, "output", "o", "table", "plan output for --dry-run/--once: table or json")
	f.StringVar(&o.LogFormat, "log-format", "", "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", "", "log level: debug, info, warn or error")
	return cmd
}

// config reads the effective configuration: the file, if any, with the set flags on top.
func (o *Options) config(cmd *cobra.Command) (*config.SyncFile, error) {
	f := &config.SyncFile{}
	if o.ConfigPath != "" {
		var err error
		if f, err = config.LoadSync(o.ConfigPath); err != nil {
			return nil, err
		}
	}
	fl := cmd.Flags()
	if o.Source != "" {
		f.Syncs = append(f.Syncs, config.Sync{Source: o.Source, Prefix: o.Prefix, Targets: o.Targets, Token: o.Token, Prune: o.Prune})
	}
	for i := range f.Syncs {
		if f.Syncs[i].Token == "" {
			f.Syncs[i].Token = o.Token
		}
	}
	if fl.Changed("http-listen") || f.Listen == "" {
		f.Listen = o.HTTPListen
	}
	if fl.Changed("resync") || f.Resync == 0 {
		f.Resync = o.Resync
	}
	if fl.Changed("log-format") {
		f.Log.Format = o.LogFormat
	}
	if fl.Changed("log-level") {
		f.Log.Level = o.LogLevel
	}
	if err := f.Log.Validate(); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// run is --once/--dry-run (one pass, its plan printed), or the daemon's life
// (lifecycle.Run): the config loaded and validated once, then the syncer until a signal.
func (o *Options) run(cmd *cobra.Command) error {
	if o.Output != "table" && o.Output != "json" {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("--output %q: want table or json", o.Output))
	}
	load := func() (*config.SyncFile, error) { return o.config(cmd) }
	if (o.Once || o.DryRun) && !o.Check {
		return o.once(cmd, load)
	}
	return lifecycle.Run(cmd, o.Check, load, start)
}

// once applies (or with --dry-run plans) one pass and prints it.
func (o *Options) once(cmd *cobra.Command, load func() (*config.SyncFile, error)) error {
	f, err := load()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	syncs, closeStores, err := openSyncs(f)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	defer closeStores()
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	results, err := syncer.Once(ctx, syncs, o.DryRun)
	if perr := printResults(cmd, o.Output, results); perr != nil {
		return perr
	}
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitError, err)
	}
	return nil
}

// service is store-sync running: the syncer of the config in force, and the health and
// metrics endpoint, which outlive the syncers a SIGHUP replaces.
type service struct {
	log     *slog.Logger
	metrics *syncer.Metrics
	ep      *metrics.Endpoint
	reload  lifecycle.Reloader[*config.SyncFile]
	record  *metrics.Reload

	mu          sync.Mutex
	current     atomic.Pointer[syncer.Syncer] // the syncer running now
	closeStores func()
	cancel      context.CancelFunc
	done        chan struct{}
	ctx         context.Context
}

// start opens the stores of f, serves the endpoint and starts the syncer.
func start(ctx context.Context, log *slog.Logger, f *config.SyncFile, load func() (*config.SyncFile, error)) (*service, error) {
	s := &service{log: log, metrics: &syncer.Metrics{}, ctx: ctx}
	reg := metrics.NewRegistry(version.Version)
	reg.MustRegister(s.metrics)
	s.record = metrics.NewReload(reg)
	s.reload = lifecycle.Reloader[*config.SyncFile]{Load: load, Use: s.use, Record: func(err error) { s.record.Record(time.Now(), err) }}
	ready := func() error { return s.current.Load().StoresUp() }
	health := func(w http.ResponseWriter, r *http.Request) { s.current.Load().ServeHealth(w, r) }
	syncs, closeStores, err := openSyncs(f)
	if err != nil {
		return nil, err
	}
	s.run(f, syncs, closeStores)
	s.record.Record(time.Now(), nil)
	if s.ep, err = metrics.Serve(f.Listen, reg, ready, false, map[string]http.HandlerFunc{"/health": health}); err != nil {
		s.Shutdown(context.Background())
		return nil, err
	}
	log.Info("syncing", "syncs", describe(syncs), "http", s.ep.Addr())
	return s, nil
}

// use stops the running syncer and starts one for f, once f's stores are open.
func (s *service) use(_ context.Context, f *config.SyncFile) error {
	syncs, closeStores, err := openSyncs(f)
	if err != nil {
		return err
	}
	s.stop()
	s.run(f, syncs, closeStores)
	s.log.Info("syncing", "syncs", describe(syncs))
	return nil
}

// run starts a syncer over syncs.
func (s *service) run(f *config.SyncFile, syncs []syncer.Sync, closeStores func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sy := &syncer.Syncer{Syncs: syncs, Log: s.log, Resync: f.Resync, DebounceMin: f.Debounce.Min, DebounceMax: f.Debounce.Max, Metrics: s.metrics}
	s.current.Store(sy)
	runCtx, cancel := context.WithCancel(s.ctx)
	s.cancel, s.done, s.closeStores = cancel, make(chan struct{}), closeStores
	go func(done chan struct{}) { defer close(done); sy.Run(runCtx) }(s.done)
}

// stop ends the running syncer and closes its stores.
func (s *service) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.closeStores()
	s.cancel = nil
}

// Reload implements lifecycle.Service: the config read again; one that does not load, or whose
// stores do not open, leaves the running syncs as they are.
func (s *service) Reload(ctx context.Context) error { return s.reload.Reload(ctx) }

// Shutdown implements lifecycle.Service.
func (s *service) Shutdown(context.Context) {
	s.stop()
	if s.ep != nil {
		s.ep.Close()
	}
}

func describe(syncs []syncer.Sync) []string {
	var names []string
	for _, sy := range syncs {
		names = append(names, sy.Store.String()+" -> "+strings.Join(sy.Targets, ","))
	}
	return names
}

// openSyncs opens the stores of f's syncs (validated with the config); closeStores closes them.
func openSyncs(f *config.SyncFile) (syncs []syncer.Sync, closeStores func(), err error) {
	var opened []store.Store
	closeStores = func() {
		for _, st := range opened {
			st.Close()
		}
	}
	for i, s := range f.Syncs {
		st, err := store.Open(s.Source)
		if err != nil {
			closeStores()
			return nil, nil, fmt.Errorf("syncs[%d]: %w", i, err)
		}
		opened = append(opened, st)
		prefix := s.Prefix
		if prefix == "" {
			prefix = store.DefaultPrefix
		}
		syncs = append(syncs, syncer.Sync{Store: st, Prefix: prefix, Targets: s.Targets, Token: s.Token, Prune: s.Prune})
	}
	return syncs, closeStores, nil
}

func printResults(cmd *cobra.Command, output string, results []syncer.Result) error {
	w := cmd.OutOrStdout()
	if output == "json" {
		return cmdutil.PrintJSON(w, results)
	}
	var rows [][]string
	for _, r := range results {
		if r.Error != "" {
			rows = append(rows, []string{r.Store, r.Target, "", "", "error: " + r.Error})
		}
		for _, c := range r.Changes {
			rows = append(rows, []string{r.Store, r.Target, c.Action, c.Kind, c.Name})
		}
	}
	seen := map[string]bool{}
	for _, r := range results {
		for _, p := range r.Problems {
			if !seen[p.Key] {
				seen[p.Key] = true
				rows = append(rows, []string{r.Store, "", "skip", "invalid", p.Key + ": " + p.Err})
			}
		}
	}
	if err := cmdutil.PrintTable(w, []string{"STORE", "TARGET", "ACTION", "KIND", "NAME"}, rows); err != nil {
		return err
	}
	// What each change of a dry run would do, under the plan.
	for _, r := range results {
		for _, c := range r.Changes {
			if c.Diff != "" {
				fmt.Fprintf(w, "\n%s %s %s on %s:\n%s", c.Action, c.Kind, c.Name, r.Target, c.Diff)
			}
		}
	}
	return nil
}
